"""`convmem bench ...`: benchmark commands (each writes results.json, report.md and plots into --out)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from convmem.cli import check_extractor, clean_errors


def _log(message: str) -> None:
    click.echo(message, err=True)


def _budgets(value: str) -> tuple[int, ...]:
    try:
        out = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter("comma-separated token counts, e.g. 500,1000,2000,4000") from None
    if not out or min(out) < 1:
        raise click.BadParameter("comma-separated positive token counts, e.g. 500,1000,2000,4000")
    return out


def _command_line(ctx: click.Context) -> str:
    parts = [ctx.command_path]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value == param.default or value is False or value == ():
            continue
        flag = param.opts[0]
        if value is True:
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [x for v in value for x in (flag, shlex.quote(str(v)))]
        else:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def resolve_data(data: str | None, official_name: str) -> str:
    """--data, else the official file from the cache folder, downloaded when missing (offline: says --data)."""
    if data:
        return data
    import platformdirs

    from convmem.bench.datasets import OFFICIAL_URLS, download_official

    folder = Path(platformdirs.user_cache_dir("convmem")) / "bench"
    cached = folder / OFFICIAL_URLS[official_name].rsplit("/", 1)[-1]
    if cached.is_file():
        return str(cached)
    _log(f"no --data given: downloading {OFFICIAL_URLS[official_name]} to {folder}")
    return str(download_official(official_name, folder))


def retriever_help() -> str:
    from convmem.bench.retrievers import bench_retrievers

    return "Registered retriever: " + ", ".join(bench_retrievers()) + "."


def common_options(fn):
    options = [
        click.option("--data", default=None, metavar="PATH",
                     help="Benchmark file (.json or .json.gz). Without it the official file is downloaded "
                          "(offline: pass --data)."),
        click.option("--limit", default=None, type=click.IntRange(min=1), help="First N items in file order."),
        click.option("--retriever", default="convmem", show_default=True, help=retriever_help()),
        click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder."),
        click.option("--db", default=None, metavar="PATH",
                     help="SQLite file for the imported memory (default OUT/memory.db). Reuse one across runs: "
                          "imports are idempotent and embeddings are cached, so reruns skip the embedding."),
        click.option("--budgets", default="500,1000,2000,4000", show_default=True,
                     help="Context budgets (tokens) for the evidence-in-context figures."),
        click.option("--embed-sample", default=1000, show_default=True, type=click.IntRange(min=0),
                     help="Texts embedded directly to measure the embedder's own rate (0: skip)."),
        click.option("--latency-repeats", default=3, show_default=True, type=click.IntRange(min=1),
                     help="Timed searches per latency query."),
        click.option("--latency-queries", default=300, show_default=True, type=click.IntRange(min=1),
                     help="Questions (a seeded sample) whose searches are timed."),
        click.option("--qa", is_flag=True, help="Also run question answering with a reader LLM."),
        click.option("--reader", type=click.Choice(["local", "openai"]), default="local", show_default=True,
                     help="QA reader: the local SmolLM2-135M-Instruct, or an OpenAI-compatible endpoint."),
        click.option("--llm-base-url", default=None, help="OpenAI-compatible base URL (default $OPENAI_BASE_URL)."),
        click.option("--llm-model", default=None, help="Model name for --reader openai (default $OPENAI_MODEL)."),
        click.option("--llm-context-window", default=None, type=click.IntRange(min=256),
                     help="Reader window in tokens (prompts are cut to fit; the full-context baseline fills it). "
                          "Default: the local model's 8192, or 128000 for openai."),
        click.option("--llm-threads", default=None, type=click.IntRange(min=1),
                     help="CPU threads for the local reader (default: PyTorch's; 1 is faster on a busy machine)."),
        click.option("--qa-notes-tokens", default=160, show_default=True, type=click.IntRange(min=1),
                     help="Length limit of the notes of the `notes` strategy (tokens)."),
        click.option("--strategy", "strategies", multiple=True,
                     type=click.Choice(["direct", "notes", "full-context"]),
                     help="QA strategies (repeatable; default all three)."),
        click.option("--qa-limit", default=None, type=click.IntRange(min=1),
                     help="Answer only the first N questions of the run."),
        click.option("--qa-budget", default=2000, show_default=True, type=click.IntRange(min=1),
                     help="Memory context budget (tokens) for the direct and notes strategies."),
        click.option("--qa-max-tokens", default=48, show_default=True, type=click.IntRange(min=1),
                     help="Answer length limit (tokens)."),
        click.option("--no-judge", is_flag=True, help="Skip the LLM judge (LoCoMo still gets the official F1)."),
        click.option("--no-plots", is_flag=True, help="Write report.md only (`convmem bench report` draws them later)."),
        click.option("--facts-extractor", type=click.Choice(["rules", "llm"]), default=None,
                     help="After the import, run fact extraction again over each imported user (`Memory.reextract`: "
                          "rules, or rules plus --chat-model) and record its cost; default: off."),
        click.option("--chat-model", default=None, metavar="SPEC",
                     help="For --facts-extractor llm: 'smollm2' (local), a model path or an OpenAI-compatible URL."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run(kind: str, params: dict[str, Any], command: str) -> None:
    from convmem.bench.report import render, write_results
    from convmem.bench.retrievers import get_bench_retriever

    retriever = get_bench_retriever(params["retriever"])
    check_extractor(params["facts_extractor"], params["chat_model"])
    official = {"longmemeval": "longmemeval_s", "locomo": "locomo"}[kind]
    data = resolve_data(params["data"], official)
    out = Path(params["out"])
    out.mkdir(parents=True, exist_ok=True)
    db = params["db"] or str(out / "memory.db")
    common = dict(data=data, out=out, retriever=retriever, db=db, limit=params["limit"],
                  budgets=_budgets(params["budgets"]), embed_sample=params["embed_sample"],
                  latency_repeats=params["latency_repeats"], latency_queries=params["latency_queries"], log=_log,
                  command=command, facts_extractor=params["facts_extractor"], chat_model=params["chat_model"])
    if kind == "longmemeval":
        from convmem.bench.longmemeval import run_longmemeval

        g = params["granularity"]
        results = run_longmemeval(granularities=("session", "turn") if g == "both" else (g,), **common)
    else:
        from convmem.bench.locomo import run_locomo

        results = run_locomo(**common)
    write_results(out, results)
    if params["qa"]:
        results["qa"] = _run_qa(kind, params, data, db, retriever, out)
        write_results(out, results)
    written = render(out, results, plots=not params["no_plots"])
    _log(f"wrote {out / 'results.json'}, {', '.join(p.name for p in written)}, rankings.jsonl")
    _echo_headline(results)


def _run_qa(kind: str, params: dict[str, Any], data: str, db: str, retriever, out: Path) -> dict[str, Any]:
    from convmem.api import Memory
    from convmem.bench import qa
    from convmem.bench.common import write_jsonl
    from convmem.bench.readers import make_reader
    from convmem.retrieve.config import RetrievalConfig

    reader = make_reader(params["reader"], base_url=params["llm_base_url"], model=params["llm_model"],
                         context_window=params["llm_context_window"], threads=params["llm_threads"])
    judge = None if params["no_judge"] else reader
    if kind == "longmemeval":
        from convmem.bench.datasets import load_longmemeval
        from convmem.bench.longmemeval import TENANT

        items = qa.longmemeval_items(load_longmemeval(data, params["limit"]), params["qa_limit"])
    else:
        from convmem.bench.datasets import load_locomo
        from convmem.bench.locomo import TENANT

        items = qa.locomo_items(load_locomo(data, params["limit"]), params["qa_limit"])
    config = retriever.config if retriever.is_memory else RetrievalConfig(dense=False)
    mem = Memory(db, tenant=TENANT, retriever=config)
    strategies = params["strategies"] or qa.STRATEGIES
    _log(f"qa: {len(items)} questions x {len(strategies)} strategies with {reader.name}")
    summary, rows = qa.run_qa(items, mem=mem, context_fn=qa.context_function(mem, retriever), reader=reader,
                              judge=judge, strategies=strategies, budget=params["qa_budget"],
                              max_tokens=params["qa_max_tokens"], notes_tokens=params["qa_notes_tokens"], log=_log)
    write_jsonl(out / "qa.jsonl", rows)
    note = None
    if judge is not None:
        note = ("the judge is the configured reader" + (" (the local 135M model: weak verdicts)"
                                                        if params["reader"] == "local" else "")
                + "; no human-label agreement measured")
    return {"reader": reader.describe(), "judge": judge.describe() if judge else None, "judge_note": note,
            "budget": params["qa_budget"], "max_tokens": params["qa_max_tokens"],
            "notes_tokens": params["qa_notes_tokens"], "n": len(items),
            "strategies": summary,
            "question_date": "LongMemEval: question_date; LoCoMo: the last session's date (the data has none)"}


def _echo_headline(results: dict[str, Any]) -> None:
    off = results["official"]
    if results["benchmark"] == "longmemeval":
        for g, agg in off.items():
            for level, m in agg["overall"].items():
                click.echo(f"{g} run, {level}: recall_all@5 {m['recall_all@5']:.4f} ndcg_any@5 {m['ndcg_any@5']:.4f} "
                           f"recall_all@10 {m['recall_all@10']:.4f} ndcg_any@10 {m['ndcg_any@10']:.4f}")
    else:
        m = off["turn"]["overall"]
        if m:
            click.echo(f"turn: recall_any@10 {m['recall_any@10']:.4f} recall_all@10 {m['recall_all@10']:.4f}")
    c = results["extensions"]["context"]["budgets"].get("2000")
    if c:
        click.echo(f"evidence inside 2000 tokens: {c['recall_all_turns']:.4f} (mean {c['mean_tokens']:.0f} tokens)")


@click.group()
def bench() -> None:
    """Benchmarks: LongMemEval, LoCoMo, speed, long context."""


@bench.command("longmemeval")
@common_options
@click.option("--granularity", type=click.Choice(["session", "turn", "both"]), default="both", show_default=True,
              help="Official ranking granularity.")
@clean_errors
def longmemeval_cmd(**params: Any) -> None:
    """LongMemEval retrieval with the official protocol (+ extensions, speed, optional QA)."""
    _run("longmemeval", params, _command_line(click.get_current_context()))


@bench.command("locomo")
@common_options
@clean_errors
def locomo_cmd(**params: Any) -> None:
    """LoCoMo evidence retrieval per official category (+ context recall, speed, optional QA)."""
    _run("locomo", params, _command_line(click.get_current_context()))


@bench.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False))
@clean_errors
def report_cmd(out_dir: str) -> None:
    """Re-render DIR/report.md and the plots from DIR/results.json."""
    from convmem.bench.report import render

    written = render(out_dir)
    click.echo(f"wrote {', '.join(str(p) for p in written)}")


@bench.command("compare")
@click.argument("out_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@clean_errors
def compare_cmd(out_dirs: tuple[str, ...]) -> None:
    """A markdown table of the headline figures of several runs (their results.json)."""
    from convmem.bench.report import compare_table

    click.echo(compare_table(out_dirs), nl=False)


@bench.command("retrievers")
def retrievers_cmd() -> None:
    """List the retrievers a benchmark can name."""
    from convmem.bench.retrievers import bench_retrievers

    for name, r in bench_retrievers().items():
        click.echo(f"{name}\t{r.kind}\t{r.description}")



def _memory_bench_options(data_help: str, out_files: str):
    """--data, --out, --db and --limit of the memory-behaviour benchmarks (abstention, about)."""
    options = [
        click.option("--data", required=True, metavar="PATH", help=data_help),
        click.option("--out", "out", required=True, type=click.Path(file_okay=False),
                     help=f"Folder for {out_files}."),
        click.option("--db", default=None, metavar="PATH",
                     help="SQLite file holding (or to hold) the imported memory, as for `convmem bench "
                          "longmemeval|locomo` (default OUT/memory.db); missing sessions are imported and embedded."),
        click.option("--limit", default=None, type=click.IntRange(min=1), help="First N items in file order."),
    ]

    def wrap(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return wrap


@bench.command("abstention")
@click.option("--benchmark", required=True, type=click.Choice(["longmemeval", "locomo"]),
              help="Which benchmark DATA is (no evidence: LongMemEval `_abs` questions, LoCoMo category 5).")
@_memory_bench_options("Benchmark file (.json or .json.gz).", "results.json, report.md and features.jsonl")
@clean_errors
def abstention_cmd(benchmark: str, data: str, out: str, db: str | None, limit: int | None) -> None:
    """Precision, recall and AUC of the "no evidence in memory" signal on unanswerable questions."""
    from convmem.bench.abstention import run

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = run(benchmark=benchmark, data=data, out=out_dir, db=db or str(out_dir / "memory.db"), limit=limit,
                  log=_log, command=_command_line(click.get_current_context()))
    s = results["signal"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    click.echo(f"{s['n']} questions, {s['n_no_evidence']} without evidence: precision {fmt(s['precision'])} "
               f"recall {fmt(s['recall'])} AUC {fmt(s['auc'])}")
    _log(f"wrote {out_dir / 'results.json'}, report.md, features.jsonl")


@bench.command("abstention-fit")
@click.argument("out_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--folds", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also K-fold cross-validation (K >= 2; 0: off): out-of-fold AUC, Brier and precision/recall "
                   "per folder next to the in-sample ones, in fit.json too. Folds are stratified by folder and "
                   "label, deterministic (by a hash of the question id).")
@clean_errors
def abstention_fit_cmd(out_dirs: tuple[str, ...], folds: int) -> None:
    """Refit the abstention model on the features.jsonl of `convmem bench abstention` runs (dev data only); prints
    the constants for convmem/retrieve/abstain.py and writes fit.json into the first folder."""
    import json

    from convmem.bench.abstention import _f as fmt, fit

    result = fit(out_dirs, folds=folds)
    (Path(out_dirs[0]) / "fit.json").write_text(json.dumps(result, indent=2))
    click.echo(result["constants"])
    for run_dir, s in result["by_run"].items():
        click.echo(f"{run_dir}: at P >= 0.5 precision {s['precision']} recall {s['recall']}; AUC {s['auc']}", err=True)
    cv = result.get("cross_validation")
    if cv:
        click.echo(f"{folds}-fold cross-validation (questions per fold {cv['fold_sizes']}, without evidence "
                   f"{cv['fold_no_evidence']}):", err=True)
        pooled = [("pooled", cv["pooled"])] if len(cv["by_run"]) > 1 else []
        for run_dir, both in [*cv["by_run"].items(), *pooled]:
            for kind, m in both.items():
                at = "; ".join(f"P >= {t[3:]}: flagged {m[t]['flagged']} precision {fmt(m[t]['precision'])} "
                               f"recall {fmt(m[t]['recall'])}" for t in m if t.startswith("at_"))
                click.echo(f"{run_dir} {kind.replace('_', '-')}: AUC {fmt(m['auc'])} Brier {fmt(m['brier'])}; {at}",
                           err=True)


@bench.command("about")
@_memory_bench_options("LoCoMo file (.json or .json.gz).", "results.json, report.md and questions.jsonl")
@clean_errors
def about_cmd(data: str, out: str, db: str | None, limit: int | None) -> None:
    """LoCoMo evidence recall of questions naming a speaker, with and without about=<that speaker>."""
    from convmem.bench.about import run

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = run(data=data, out=out_dir, db=db or str(out_dir / "memory.db"), limit=limit, log=_log,
                  command=_command_line(click.get_current_context()))
    for variant, m in results["overall"].items():
        click.echo(f"{variant}: recall_all@10 {m['recall_all@10']:.4f} recall_all@5 {m['recall_all@5']:.4f}")
    _log(f"wrote {out_dir / 'results.json'}, report.md, questions.jsonl")
