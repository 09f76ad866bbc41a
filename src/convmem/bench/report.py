"""report.md and plots from a run's results.json (`convmem bench report DIR` re-renders them), and a comparison
table over several runs (`convmem bench compare DIR...`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from convmem.errors import InputError

LME_HEADLINE = [("session", "session", "recall_all@5"), ("session", "session", "ndcg_any@5"),
                ("session", "session", "recall_all@10"), ("turn", "turn", "recall_all@10"),
                ("turn", "turn", "ndcg_any@10")]


def load_results(out_dir: str | Path) -> dict[str, Any]:
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise InputError(f"{path}: no results.json here; run `convmem bench longmemeval|locomo --out {out_dir}` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc


def write_results(out_dir: Path, results: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def _f(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _ms(block: dict | None, key: str) -> str:
    if not block or block.get(key) is None:
        return "-"
    return f"{block[key]:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return out


def _metric_table(block: dict, level: str, names: Sequence[str], ks: Sequence[int]) -> list[str]:
    rows = [[f"{name}"] + [block.get(level, {}).get(f"{name}@{k}") for k in ks] for name in names]
    return _table([level] + [f"@{k}" for k in ks], rows)


# --------------------------------------------------------------------------------------------- report.md


def render_markdown(res: dict[str, Any]) -> str:
    bench = res["benchmark"]
    cfg, data, prov, speed = res["config"], res["data"], res["provenance"], res["speed"]
    ks = cfg["ks"]
    lines = [f"# {bench} · retriever `{cfg['retriever']['name']}`", ""]
    if res.get("command"):
        lines += ["```", res["command"], "```", ""]
    lines += [
        f"- data: `{data['path']}` (sha256 `{data['sha256']}`), {data['n_items']} items"
        + (f" (first {data['limit']} in file order)" if data.get("limit") else ""),
        f"- retriever: {cfg['retriever']['description']}"
        + (f"; config `{json.dumps(cfg['retriever']['config'])}`" if cfg["retriever"].get("config") else ""),
        f"- embedder: `{cfg.get('embedder')}`; corpus: {cfg.get('corpus')}",
        f"- convmem commit `{(prov['git'].get('commit') or '?')[:12]}`{' (uncommitted changes)' if prov['git'].get('dirty') else ''}"
        f", python {prov['python']}, {prov['cpu_count']} CPUs, load average at start {prov.get('loadavg_start')}"
        f" / end {prov.get('loadavg_end')}",
        "",
    ]
    off = res["official"]
    if bench == "longmemeval":
        lines += ["## Official retrieval metrics (LongMemEval protocol; abstention excluded)", ""]
        for g in cfg["granularities"]:
            agg = off[g]
            lines += [f"### {g}-level run ({agg['n_scored']} scored, {agg['n_abstention']} abstention left out)", ""]
            for level in ("turn", "session"):
                if level in agg["overall"]:
                    note = " (turn->session mapping, k grown to k distinct sessions)" if g == "turn" and \
                        level == "session" else ""
                    lines += [f"{level} metrics{note}:", ""]
                    lines += _metric_table(agg["overall"], level, ("recall_any", "recall_all", "ndcg_any"), ks)
                    lines += [""]
        nogold = data.get("quirks", {}).get("scored_without_official_session_gold")
        if nogold:
            lines += [f"{nogold} scored questions have no official gold (their evidence is only in assistant turns, "
                      "which the protocol does not index): by the official rules they score recall_all = 1 and "
                      "recall_any = ndcg_any = 0. The all-turns extension below scores them on their real evidence.",
                      ""]
        lines += ["### By question type", ""]
        rows = []
        types = sorted({t for g in cfg["granularities"] for t in off[g]["by_type"]})
        for t in types:
            s = off.get("session", {}).get("by_type", {}).get(t, {})
            tt = off.get("turn", {}).get("by_type", {}).get(t, {})
            rows.append([t, s.get("n", tt.get("n")), s.get("session", {}).get("recall_all@5"),
                         s.get("session", {}).get("ndcg_any@5"), tt.get("turn", {}).get("recall_all@10"),
                         tt.get("turn", {}).get("ndcg_any@10")])
        lines += _table(["question type", "n", "session recall_all@5", "session ndcg_any@5",
                         "turn recall_all@10", "turn ndcg_any@10"], rows) + [""]
        fx = res.get("ranking_fixups") or {}
        if fx:
            lines += [f"Ranking completion (ids the memory could not rank, placed as documented): `{json.dumps(fx)}`",
                      ""]
        ext = res["extensions"]["all_turns"]
        lines += ["## Extension: evidence recall over all turns (has_answer turns, assistant turns included)", "",
                  f"{ext['n_scored']} questions scored ({ext['n_scored_questions_without_evidence']} non-abstention "
                  f"questions without any has_answer turn left out).", ""]
        if ext.get("overall"):
            lines += _table(["metric"] + [f"@{k}" for k in ks],
                            [[m] + [ext["overall"].get(f"{m}@{k}") for k in ks]
                             for m in ("recall_any", "recall_all", "ndcg_any")]) + [""]
    else:
        agg = off["turn"]
        lines += ["## Evidence retrieval (turn level, per official category)", "",
                  f"{agg['n_questions']} questions; {agg['n_scored']} scored; {agg['n_no_valid_evidence']} without any "
                  f"valid evidence id (counted, not scored); {agg.get('n_missing_question', 0)} without question "
                  "text.", ""]
        rows = [["overall", agg["n_scored"]] + [agg["overall"].get(f"{m}@{k}") for m in ("recall_any", "recall_all")
                                                for k in (5, 10, 30)]]
        sub = agg["overall_categories_1_4"]
        rows.append(["categories 1-4", sub["n"]] + [sub.get(f"{m}@{k}") for m in ("recall_any", "recall_all")
                                                    for k in (5, 10, 30)])
        for name, c in agg["by_category"].items():
            rows.append([f"{name} ({c['n_no_valid_evidence']} no evidence)", c["n_scored"]]
                        + [c.get(f"{m}@{k}") for m in ("recall_any", "recall_all") for k in (5, 10, 30)])
        lines += _table(["category", "n scored"] + [f"{m}@{k}" for m in ("recall_any", "recall_all")
                                                     for k in (5, 10, 30)], rows) + [""]
        lines += ["All k:", ""] + _metric_table({"turn": agg["overall"]}, "turn",
                                                ("recall_any", "recall_all", "ndcg_any"), ks) + [""]
        inv = data.get("quirks", {}).get("invalid_evidence") or []
        if inv:
            lines += ["Evidence strings dropped as invalid: "
                      + "; ".join(f"{x['question_id']}: {x['dropped']}" for x in inv), ""]
    ctx = res["extensions"]["context"]
    lines += [f"## Extension: evidence inside the context handed to the LLM ({ctx['n']} questions)", "",
              f"Share of questions whose every evidence turn (or evidence session) is cited in the context; "
              f"tokens by `{ctx.get('tokenizer')}`; assembler: {ctx.get('assembler')}.", ""]
    lines += _table(["budget (tokens)", "every evidence turn", "every evidence session", "mean tokens",
                     "mean turns cited", "answer kept (checkable)"],
                    [[b, c["recall_all_turns"], c["recall_all_sessions"], _f(c["mean_tokens"], 1),
                      _f(c["mean_turns_cited"], 1), f"{_f(c.get('answer_kept'), 3)} ({c.get('answer_checkable', 0)})"]
                     for b, c in ctx["budgets"].items()]) + [""]
    lines += ["answer kept: of the questions whose gold answer has at most 6 words and occurs word for word in "
              "their evidence turns, the share whose context text still holds it (long turns are cut around their "
              "match; a cited turn can lose its answer).", ""]
    upd = res["extensions"].get("updates")
    if upd and upd.get("n"):
        lines += [f"## Extension: knowledge updates ({upd['n']} knowledge-update questions, evidence on 2+ dates)",
                  "", "Share whose latest evidence session ranks before the older ones, and whose context cites it.",
                  ""]
        lines += _table(["latest first: " + g for g in upd["latest_first"]]
                        + [f"latest cited @{b}" for b in upd["latest_cited"]],
                        [[_f(v) for v in upd["latest_first"].values()]
                         + [_f(v) for v in upd["latest_cited"].values()]]) + [""]
    lines += ["## Speed", ""]
    imp = speed["import"]
    reused = imp["figures_from"] == "this run" and not imp["turns_written"]
    if reused:
        lines += ["- import: nothing to import (the database was reused and holds no record of its first import "
                  f"for embedder `{imp['embedder']}`); this run checked {imp['this_run']['sessions_unchanged']} "
                  f"sessions in {_f(imp['this_run']['seconds'], 1)} s"]
    else:
        lines += [f"- import: {_f(imp['seconds'], 1)} s for {imp['turns_written']} turns written "
                  f"({_f(imp['turns_per_second'], 1)} turns/s), {imp['texts_embedded']} texts embedded "
                  f"({_f(imp.get('texts_embedded_per_second_overall'), 1)} texts/s overall); figures from "
                  f"{imp['figures_from']}; this run: "
                  f"{json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in imp['this_run'].items()})}"]
    er = speed.get("embedder_rate")
    if er:
        when = " (the import was recorded by an earlier run, possibly under another machine load)" \
            if imp["figures_from"] != "this run" else ""
        lines += [f"- embedder alone (`{er['embedder']}.embed_batch` on {er['texts']} sampled texts of this data): "
                  f"{er['texts_per_second']:.1f} texts/s; import embeds at "
                  f"{_f(speed.get('ingest_vs_embedder'), 2)} x that rate{when}"]
    srch = speed.get("search", {})
    if "with_query_embedding" in srch:
        lines += [f"- search (k={srch['k']}, {srch['queries']} queries x {srch['repeats']}, mean "
                  f"{_f(srch['mean_turns_per_user'], 0)} turns per user): p50/p95 "
                  f"{_ms(srch['with_query_embedding'], 'p50_ms')}/{_ms(srch['with_query_embedding'], 'p95_ms')} ms "
                  f"with query embedding, {_ms(srch['without_query_embedding'], 'p50_ms')}/"
                  f"{_ms(srch['without_query_embedding'], 'p95_ms')} ms with a precomputed query vector"]
    else:
        blk = srch.get("per_question_all_rankings") or srch.get("per_question") or {}
        lines += [f"- ranking ({srch.get('what')}): p50/p95 {_ms(blk, 'p50_ms')}/{_ms(blk, 'p95_ms')} ms"]
    fx = res.get("fact_extraction")
    if fx:
        model = f", chat model `{fx['chat_model']}`" if fx.get("chat_model") else ""
        lines += [f"- fact extraction after the import (`Memory.reextract`, {fx['extractor']}{model}): "
                  f"{fx['sessions']} sessions of {fx['users']} users, {fx['facts_rules']} rule facts, "
                  f"{fx['facts_llm']} LLM facts ({fx['items_written_by_model']} items written by the model, "
                  f"{fx['items_dropped_by_validation']} dropped by validation, {fx['sessions_llm_failed']} sessions "
                  "without JSON); model time "
                  f"{_f(fx['seconds_per_session'], 1)} s per session; {_f(fx['seconds'], 1)} s in all"]
    lines += [""]
    if res.get("qa"):
        lines += render_qa(res["qa"])
    q = {k: v for k, v in data.get("quirks", {}).items() if k != "invalid_evidence"}
    lines += ["## Data quirks (counted)", "", "`" + json.dumps(q) + "`", ""]
    return "\n".join(lines) + "\n"


def render_qa(qa: dict[str, Any]) -> list[str]:
    lines = ["## QA", "",
             f"- reader: `{json.dumps(qa['reader'])}`",
             f"- judge: `{json.dumps(qa.get('judge'))}`" + (f" ({qa['judge_note']})" if qa.get("judge_note") else ""),
             f"- {qa['n']} questions; memory context budget {qa['budget']} tokens", ""]
    rows = []
    for name, s in qa["strategies"].items():
        f1 = s.get("f1", {}).get("overall")
        rows.append([name, s["n"], s.get("judge_accuracy"), f1, _f(s["mean_prompt_tokens"], 0),
                     _f(s["mean_completion_tokens"], 1), _ms(s["latency"], "p50_ms"), _ms(s["latency"], "p95_ms")])
    lines += _table(["strategy", "n", "judge accuracy", "official F1 (LoCoMo)", "mean prompt tokens",
                     "mean answer tokens", "latency p50 ms", "latency p95 ms"], rows) + [""]
    for name, s in qa["strategies"].items():
        if s.get("judge_by_label"):
            lines += [f"{name}, judge accuracy by type: "
                      + ", ".join(f"{k} {v['accuracy']:.2f} (n={v['n']})" for k, v in s["judge_by_label"].items())]
        if s.get("f1"):
            lines += [f"{name}, official F1 by category: "
                      + ", ".join(f"{k} {v['mean']:.3f} (n={v['n']})" for k, v in s["f1"]["by_category"].items())]
    return lines + [""]


# --------------------------------------------------------------------------------------------- plots


def render_plots(res: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    name = res["config"]["retriever"]["name"]
    bench = res["benchmark"]
    ctx = res["extensions"]["context"]
    budgets = [int(b) for b in ctx["budgets"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(budgets, [ctx["budgets"][str(b)]["recall_all_turns"] for b in budgets], "o-", label="every evidence turn")
    ax.plot(budgets, [ctx["budgets"][str(b)]["recall_all_sessions"] for b in budgets], "s--",
            label="every evidence session")
    for b in budgets:
        ax.annotate(f"{ctx['budgets'][str(b)]['mean_tokens']:.0f} tok", (b, ctx["budgets"][str(b)]["recall_all_turns"]),
                    textcoords="offset points", xytext=(0, -14), ha="center", fontsize=7)
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("context budget (tokens)")
    ax.set_ylabel("share of questions")
    ax.set_title(f"{bench}: evidence inside the context ({name})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    p = out_dir / "recall_vs_budget.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    written.append(p)

    off = res["official"]
    if bench == "longmemeval":
        series = []
        if "session" in off:
            series.append(("session recall_all@5", {t: v.get("session", {}).get("recall_all@5")
                                                    for t, v in off["session"]["by_type"].items()}))
        if "turn" in off:
            series.append(("turn recall_all@10", {t: v.get("turn", {}).get("recall_all@10")
                                                  for t, v in off["turn"]["by_type"].items()}))
        by = ctx.get("by_type", {})
        series.append(("context@2000 every evidence turn",
                       {t: v["budgets"].get("2000", {}).get("recall_all_turns") for t, v in by.items()}))
        fname, title = "by_type.png", f"LongMemEval by question type ({name})"
    else:
        cats = off["turn"]["by_category"]
        series = [("recall_all@10", {c: v.get("recall_all@10") for c, v in cats.items()}),
                  ("recall_any@10", {c: v.get("recall_any@10") for c, v in cats.items()})]
        by = ctx.get("by_category", {})
        series.append(("context@2000 every evidence turn",
                       {c: v["budgets"].get("2000", {}).get("recall_all_turns") for c, v in by.items()}))
        fname, title = "by_category.png", f"LoCoMo by category ({name})"
    labels = sorted({k for _, d in series for k in d}, key=lambda k: list(series[0][1]).index(k)
                    if k in series[0][1] else 99)
    written.append(_bars(plt, labels, series, title, out_dir / fname))
    qa = res.get("qa")
    if qa and any(s.get("judge_by_label") for s in qa["strategies"].values()):
        qlabels = sorted({k for s in qa["strategies"].values() for k in s.get("judge_by_label", {})})
        qseries = [(n, {k: v["accuracy"] for k, v in s.get("judge_by_label", {}).items()})
                   for n, s in qa["strategies"].items()]
        written.append(_bars(plt, qlabels, qseries, f"QA judge accuracy ({qa['reader'].get('name')})",
                             out_dir / "qa_by_type.png"))
    return written


def _bars(plt, labels: list[str], series: list[tuple[str, dict]], title: str, path: Path) -> Path:
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(labels) + 2), 4))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for i, (name, d) in enumerate(series):
        ax.bar(x + i * width - 0.4 + width / 2, [d.get(k) or 0 for k in labels], width, label=name)
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.22)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", ncol=min(3, len(series)), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render(out_dir: str | Path, res: dict[str, Any] | None = None, *, plots: bool = True) -> list[Path]:
    """(Re-)write report.md and the plots of a run from its results.json."""
    out_dir = Path(out_dir)
    res = res if res is not None else load_results(out_dir)
    (out_dir / "report.md").write_text(render_markdown(res), encoding="utf-8")
    written = [out_dir / "report.md"]
    if not plots:
        return written
    try:
        written += render_plots(res, out_dir)
    except ImportError as exc:  # matplotlib missing: the report is still written
        (out_dir / "report.md").write_text(render_markdown(res) + f"\n(plots not drawn: {exc}; "
                                           "pip install 'convmem[bench]')\n", encoding="utf-8")
    return written


# --------------------------------------------------------------------------------------------- compare


def compare_table(dirs: Sequence[str | Path]) -> str:
    """A markdown table of the headline figures of several runs."""
    rows = []
    for d in dirs:
        res = load_results(d)
        cfg, off, ctx, speed = res["config"], res["official"], res["extensions"]["context"], res["speed"]
        c2000 = ctx["budgets"].get("2000", {})
        srch = speed.get("search", {})
        lat = srch.get("with_query_embedding") or srch.get("per_question_all_rankings") or srch.get("per_question")
        lat_vec = srch.get("without_query_embedding")
        if res["benchmark"] == "longmemeval":
            s = off.get("session", {}).get("overall", {}).get("session", {})
            t = off.get("turn", {}).get("overall", {}).get("turn", {})
            n = (off.get("session") or off.get("turn"))["n_scored"]
            figs = [s.get("recall_all@5"), s.get("ndcg_any@5"), s.get("recall_all@10"), t.get("recall_all@10"),
                    t.get("ndcg_any@10")]
        else:
            a = off["turn"]
            n = a["n_scored"]
            figs = [a["overall"].get("recall_all@5"), a["overall"].get("recall_any@10"),
                    a["overall"].get("recall_all@10"), a["overall"].get("recall_all@30"), None]
        rows.append([res["benchmark"], cfg["retriever"]["name"], res["data"]["n_items"], n, *figs,
                     c2000.get("recall_all_turns"), _f(c2000.get("mean_tokens"), 0), _ms(lat, "p50_ms"),
                     _ms(lat, "p95_ms"), _ms(lat_vec, "p95_ms")])
    header = ["benchmark", "retriever", "items", "scored", "LME S-R_all@5 / LoCoMo R_all@5",
              "LME S-nDCG@5 / LoCoMo R_any@10", "LME S-R_all@10 / LoCoMo R_all@10",
              "LME T-R_all@10 / LoCoMo R_all@30", "LME T-nDCG@10", "evidence in 2000-token context",
              "mean ctx tokens", "search p50 ms", "search p95 ms", "p95 ms (query vector given)"]
    return "\n".join(_table(header, rows)) + "\n"
