"""`convmem summaries` (a thin mirror of `Memory.summaries`) and `convmem bench locomo-events`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from convmem.cli import clean_errors, db_option, emit_json, open_memory, tenant_option


@click.command()
@click.option("--user", required=True, help="Whose memory.")
@click.option("--session", default=None, help="Only this session.")
@click.option("--method", type=click.Choice(["extractive", "llm"]), default=None,
              help="extractive (no LLM) or llm (needs --chat-model). Default: llm with --chat-model, else extractive.")
@click.option("--chat-model", default=None,
              help="For --method llm: 'smollm2' (local) or an OpenAI-compatible base URL.")
@click.option("--json", "as_json", is_flag=True)
@db_option
@tenant_option
@clean_errors
def summaries(user: str, session: str | None, method: str | None, chat_model: str | None, as_json: bool,
              db: str | None, tenant: str) -> None:
    """One summary per session of a user, oldest first."""
    mem = open_memory(db, tenant, chat_model=chat_model)
    records = mem.summaries(user, method=method, session=session)
    if as_json:
        emit_json([s.to_dict() for s in records])
        return
    for s in records:
        click.echo(f"{s.session_id}\t{s.started_at[:16]}\t{s.method}\t{s.text}")
    click.echo(f"{len(records)} session(s)", err=True)


@click.command("locomo-events")
@click.option("--data", default=None, metavar="PATH",
              help="LoCoMo file (.json or .json.gz). Without it the official file is downloaded (offline: pass --data).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--db", default=None, metavar="PATH",
              help="SQLite file for the imported memory (default OUT/memory.db); the one of `convmem bench locomo` "
                   "is reused as it is.")
@click.option("--limit", default=None, type=click.IntRange(min=1), help="First N conversations in file order.")
@click.option("--window", default=1, show_default=True, type=click.IntRange(min=1),
              help="Sessions per range (an item is one speaker's events in one range).")
@click.option("--per-session", default=2, show_default=True, type=click.IntRange(min=1),
              help="Sentences per session in the extractive and lead predictions.")
@click.option("--reader", type=click.Choice(["local", "openai"]), default=None,
              help="Also summarise with a reader LLM: the local SmolLM2-135M-Instruct or an OpenAI-compatible endpoint.")
@click.option("--llm-base-url", default=None, help="OpenAI-compatible base URL (default $OPENAI_BASE_URL).")
@click.option("--llm-model", default=None, help="Model name for --reader openai (default $OPENAI_MODEL).")
@click.option("--llm-limit", default=None, type=click.IntRange(min=1),
              help="The LLM summarises only the first N items (the local model takes ~10-30 s an item).")
@click.option("--llm-threads", default=None, type=click.IntRange(min=1), help="CPU threads for the local reader.")
@clean_errors
def locomo_events(**params: Any) -> None:
    """LoCoMo event summarization per speaker and session range: ROUGE-1/2/L and token F1 against event_summary."""
    from convmem.bench.events import render_events, run_events
    from convmem.bench.report import write_results
    from convmem.cli.bench import _command_line, _log, resolve_data

    data = resolve_data(params["data"], "locomo")
    out = Path(params["out"])
    reader = None
    if params["reader"]:
        from convmem.bench.readers import make_reader

        reader = make_reader(params["reader"], base_url=params["llm_base_url"], model=params["llm_model"],
                             threads=params["llm_threads"])
    results = run_events(data=data, out=out, db=params["db"] or str(out / "memory.db"), limit=params["limit"],
                         window=params["window"], per_session=params["per_session"], reader=reader,
                         llm_limit=params["llm_limit"], log=_log,
                         command=_command_line(click.get_current_context()))
    write_results(out, results)
    (out / "report.md").write_text(render_events(results))
    _log(f"wrote {out / 'results.json'}, report.md, items.jsonl")
    for method, m in results["methods"].items():
        click.echo(f"{method}: n {m['n']} rouge1 {m['rouge1']:.4f} rouge2 {m['rouge2']:.4f} rougeL {m['rougeL']:.4f} "
                   f"f1 {m['f1']:.4f}")
