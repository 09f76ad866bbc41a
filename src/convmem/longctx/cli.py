"""`convmem bench longctx`: needle tasks over a length x depth grid, for each KV-cache method.

A thin mirror of `convmem.longctx.bench.run_grid` + `convmem.longctx.report.write_all`.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from convmem.errors import ConvmemError, InputError


def _split(text: str, cast, what: str):
    try:
        return [cast(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{what} must be a comma-separated list: {exc}") from exc


def _pairs(items, scoped: bool):
    from convmem.longctx.bench import parse_value

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        if scoped:
            scope, dot, field = key.partition(".")
            if not dot:
                raise click.BadParameter(f"{item!r}: write METHOD.FIELD=VALUE, e.g. streaming.window=1020")
            out.setdefault(scope, {})[field] = parse_value(value)
        else:
            out[key] = parse_value(value)
    return out


def _corpus(path: str | None):
    if not path:
        return None
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [p for p in text.split("\n\n") if p.strip()]


@click.command("longctx")
@click.option("--task", "tasks", help="Task name(s), comma-separated (see --list).")
@click.option("--lengths", default="2048,4096", show_default=True, help="Prompt lengths in tokens.")
@click.option("--depths", default="0,0.5,1", show_default=True, help="Needle depths in [0, 1].")
@click.option("--method", "methods", default="full", show_default=True,
              help="Method(s), comma-separated: full, streaming, lm-infinite, h2o, sirllm (KV-cache policies) "
              "or memory (convmem's memory of the haystack, read by the same model).")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (results.json, report.md, PNGs).")
@click.option("--samples", default=1, show_default=True, help="Instances per cell (seeds SEED..SEED+n-1).")
@click.option("--seed", default=0, show_default=True)
@click.option("--model", default=None, help="transformers folder or name; default: SmolLM2-135M-Instruct (GGUF).")
@click.option("--gguf-file", default=None, help="GGUF file inside --model.")
@click.option("--endpoint", default=None, help="OpenAI-compatible base URL (runs there instead of locally).")
@click.option("--endpoint-model", default=None, help="Model name for --endpoint.")
@click.option("--tokenizer", "tokenizer_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="tokenizer.json for task lengths with --endpoint (default: SmolLM2's).")
@click.option("--policy-arg", multiple=True,
              help="METHOD.FIELD=VALUE, e.g. streaming.window=1020 or memory.budget_tokens=1024 (repeatable).")
@click.option("--task-arg", multiple=True, help="TASK.FIELD=VALUE, e.g. niah_multikey.n_keys=8 (repeatable).")
@click.option("--corpus", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Filler text file (paragraphs split on blank lines); .jsonl of threads for bestanswer.")
@click.option("--max-new-tokens", default=32, show_default=True)
@click.option("--chunk-size", default=512, show_default=True, help="Prefill chunk (bounds memory).")
@click.option("--chat/--no-chat", default=None, help="Use the tokenizer's chat template (default: if it has one).")
@click.option("--threads", default=None, type=int, help="torch CPU threads.")
@click.option("--resume/--no-resume", default=True, show_default=True, help="Skip cells already in OUT.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--list", "list_only", is_flag=True, help="List tasks and methods, then exit.")
def longctx(tasks, lengths, depths, methods, out, samples, seed, model, gguf_file, endpoint, endpoint_model,
            tokenizer_file, policy_arg, task_arg, corpus, max_new_tokens, chunk_size, chat, threads, resume,
            progress, list_only):
    """Needle tasks over lengths x depths for each KV-cache method; writes results.json, report.md and a
    depth x length heatmap per method."""
    from convmem.longctx import report
    from convmem.longctx.bench import METHODS, Grid, run_grid
    from convmem.longctx.tasks import TASKS

    if list_only:
        for name, (family, defaults) in sorted(TASKS.items()):
            args = ", ".join(f"{k}={v}" for k, v in defaults.items())
            click.echo(f"{name:24s} {family.__name__}({args})  scorer={family.scorer}")
        click.echo("methods: " + ", ".join(METHODS))
        return
    if not tasks or not out:
        raise click.UsageError("--task and --out are required (or use --list)")
    try:
        task_args = _pairs(task_arg, scoped=True)
        filler = _corpus(corpus)
        names = _split(tasks, str, "--task")
        if filler is not None:
            for name in names:
                key = "threads" if name == "bestanswer" else "filler"
                task_args.setdefault(name, {})[key] = filler
        grid = Grid(tasks=names, lengths=_split(lengths, int, "--lengths"),
                    depths=_split(depths, float, "--depths"), methods=_split(methods, str, "--method"),
                    samples=samples, seed=seed, task_args=task_args, policy_args=_pairs(policy_arg, scoped=True),
                    max_new_tokens=max_new_tokens, chunk_size=chunk_size, chat=chat, endpoint=endpoint,
                    endpoint_model=endpoint_model)
        grid.check()
        if threads:
            import torch

            torch.set_num_threads(threads)
        if endpoint:
            lm = None
            if tokenizer_file:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(tokenizer_file)
            else:
                tok = None
            label = f"endpoint {endpoint} ({endpoint_model})"
        else:
            from convmem.longctx.runners import load_local

            lm, tok = load_local(model, gguf_file=gguf_file)
            label = model or "SmolLM2-135M-Instruct Q4_1 GGUF (dequantized, float32)"
        argv = sys.argv[sys.argv.index("longctx") + 1 :] if "longctx" in sys.argv else sys.argv[1:]
        meta = {"command": "convmem bench longctx " + shlex.join(argv), "model": label}
        out_dir = Path(out)
        records = run_grid(grid, out_dir, model=lm, tokenizer=tok, show_progress=progress, resume=resume, meta=meta)
        meta = json.loads((out_dir / "results.json").read_text())["meta"]
        files = report.write_all(out_dir, records, meta)
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    except ConvmemError as exc:
        raise click.ClickException(str(exc)) from exc
    for row in report.summary_rows(records):
        click.echo(f"{row['task']:22s} {row['method']:12s} {row['n_tokens']:6d}  score {row['score']:.2f}  "
                   f"(n={row['n']})")
    click.echo("wrote " + ", ".join(str(f) for f in files))
