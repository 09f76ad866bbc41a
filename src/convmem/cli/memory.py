"""`convmem facts`, `convmem reextract`, `convmem instructions add|list|remove` and `convmem bench instructions`:
thin mirrors of `Memory.facts` / `fact_timeline` / `contradictions`, `Memory.reextract` and the
standing-instruction methods."""

from __future__ import annotations

import click

from convmem.cli import check_extractor, clean_errors, db_option, emit_json, fail, open_memory, tenant_option


def _fact_line(f) -> str:
    until = f"{f.valid_until:%Y-%m-%d}" if f.valid_until else "now"
    return (f"{f.subject}\t{f.attribute}\t{f.value}\t{f.valid_from:%Y-%m-%d} .. {until}\t[{f.turn_id}]"
            f"\t{f.extractor}")


@click.command()
@click.option("--user", required=True, help="Whose memory.")
@click.option("--at", default=None, help="Facts valid at this ISO-8601 time (a date alone: the end of that day).")
@click.option("--subject", default=None, help="Only facts about this speaker.")
@click.option("--timeline", "mode", flag_value="timeline", help="Every record, closed and open.")
@click.option("--contradictions", "mode", flag_value="contradictions",
              help="Per attribute that changed: the changes, flagging same-session or same-day ones.")
@click.option("--json", "as_json", is_flag=True)
@db_option
@tenant_option
@clean_errors
def facts(user: str, at: str | None, subject: str | None, mode: str | None, as_json: bool, db: str | None,
          tenant: str) -> None:
    """Facts about a user and the people they talk with, as valid now (or --at a time), or their history."""
    mem = open_memory(db, tenant)
    if mode and at:
        fail("--at selects facts valid at one time; leave it out with --timeline or --contradictions")
    if mode == "contradictions":
        report = mem.contradictions(user, subject=subject)
        if as_json:
            emit_json(report)
            return
        for group in report:
            flag = "CONFLICT " if group["conflicting"] else ""
            changes = " -> ".join(f"{c['value']} ({c['valid_from'][:10]})" for c in group["changes"])
            click.echo(f"{flag}{group['subject']} / {group['attribute']}: {changes}")
        click.echo(f"{len(report)} attribute(s) changed, {sum(g['conflicting'] for g in report)} with conflicts",
                   err=True)
        return
    records = mem.fact_timeline(user, subject=subject) if mode == "timeline" else \
        mem.facts(user, at=at, subject=subject)
    if as_json:
        emit_json([f.to_dict() for f in records])
        return
    for f in records:
        click.echo(_fact_line(f))
    click.echo(f"{len(records)} fact(s)", err=True)


@click.command()
@click.option("--user", default=None, help="Only this user (default: every user of the tenant).")
@click.option("--facts-extractor", type=click.Choice(["rules", "llm"]), default="rules", show_default=True,
              help="rules (no LLM), or rules plus the chat model of --chat-model.")
@click.option("--chat-model", default=None, metavar="SPEC",
              help="For --facts-extractor llm: 'smollm2' (local), a model path or an OpenAI-compatible base URL.")
@click.option("--limit-sessions", default=None, type=click.IntRange(min=1),
              help="Stop after N sessions (to measure the cost per session first).")
@click.option("--quiet", is_flag=True, help="No line per session on stderr.")
@db_option
@tenant_option
@clean_errors
def reextract(user: str | None, facts_extractor: str, chat_model: str | None, limit_sessions: int | None,
              quiet: bool, db: str | None, tenant: str) -> None:
    """Run fact extraction again over stored sessions (history imported before facts existed, or before an LLM
    was configured), replacing each session's facts; prints the report as JSON. Idempotent."""
    check_extractor(facts_extractor, chat_model)
    mem = open_memory(db, tenant, facts_extractor=facts_extractor, chat_model=chat_model)

    def progress(row: dict) -> None:
        click.echo(f"{row['user']}\t{row['session_id']}\t{row['facts_rules']} rule, {row['facts_llm']} LLM facts"
                   f"\t{row['llm_seconds']:.1f} s{'' if row['changed'] else ' (unchanged)'}", err=True)

    emit_json(mem.reextract(user, limit_sessions=limit_sessions, progress=None if quiet else progress))


@click.group()
def instructions() -> None:
    """A user's standing instructions: set, list (or those that apply to a request), remove."""


@instructions.command("add")
@click.argument("text")
@click.option("--user", required=True)
@click.option("--kind", default=None, help="allergy, diet, language, format, address, units or general "
                                           "(default: classified from the text).")
@click.option("--json", "as_json", is_flag=True)
@db_option
@tenant_option
@clean_errors
def add(text: str, user: str, kind: str | None, as_json: bool, db: str | None, tenant: str) -> None:
    """Set a standing instruction TEXT for a user (idempotent)."""
    ins = open_memory(db, tenant).add_instruction(user, text, kind=kind)
    if as_json:
        emit_json(ins.to_dict())
    else:
        click.echo(f"{ins.instruction_id}\t{ins.kind}{' (always on)' if ins.always_on else ''}\t{ins.text}")


@instructions.command("list")
@click.option("--user", required=True)
@click.option("--for", "query", default=None, help="Only those that apply to this request, with the reason.")
@click.option("--json", "as_json", is_flag=True)
@db_option
@tenant_option
@clean_errors
def list_(user: str, query: str | None, as_json: bool, db: str | None, tenant: str) -> None:
    """List a user's standing instructions, or those that apply to a request (--for)."""
    mem = open_memory(db, tenant)
    if query is not None:
        rows = [s.to_dict() for s in mem.applicable_instructions(user, query)]
    else:
        rows = [i.to_dict() for i in mem.instructions(user)]
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        why = f"\t({r['reason']})" if "reason" in r else ""
        click.echo(f"{r['instruction_id']}\t{r['kind']}\t{r['source']}\t{r['text']}{why}")


@instructions.command("remove")
@click.argument("instruction_id")
@click.option("--user", required=True)
@db_option
@tenant_option
@clean_errors
def remove(instruction_id: str, user: str, db: str | None, tenant: str) -> None:
    """Remove the standing instruction INSTRUCTION_ID of a user."""
    open_memory(db, tenant).remove_instruction(user, instruction_id)
    click.echo(f"removed {instruction_id}")


@click.command("instructions")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for results.json and report.md.")
@click.option("--data", default=None, type=click.Path(dir_okay=False),
              help="Labelled set (default: the shipped convmem/data/instructions_eval.jsonl).")
@click.option("--threshold", default=None, type=float, help="MiniLM cosine threshold (default: the library's).")
@click.option("--embedder", default="minilm", show_default=True, help="Embedder for the similarity part.")
@clean_errors
def bench_instructions(out_dir: str, data: str | None, threshold: float | None, embedder: str) -> None:
    """Precision/recall of standing-instruction selection on a labelled set."""
    from convmem.extract.evaluate import run

    results = run(out_dir, data=data, threshold=threshold, embedder=embedder)
    for row in results["rules"]:
        o = row["splits"]["all"]
        click.echo(f"{row['rule']}: precision {o['precision']:.3f} recall {o['recall']:.3f} f1 {o['f1']:.3f}")
    click.echo(f"wrote {out_dir}/results.json and {out_dir}/report.md", err=True)


@click.command("facts")
@click.argument("data", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for summary.json, sample.jsonl and instructions.jsonl.")
@click.option("--from", "first", default=0, show_default=True, type=click.IntRange(min=0), help="First haystack.")
@click.option("--to", "last", default=40, show_default=True, type=click.IntRange(min=1), help="Haystack to stop at.")
@click.option("--sample", "size", default=40, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=31, show_default=True, type=int)
@click.option("--llm", default=None, metavar="SPEC", help="Also run the LLM extractor with this chat model "
                                                           "('smollm2', a model path or an http(s) URL).")
@click.option("--llm-sessions", default=10, show_default=True, type=click.IntRange(min=1),
              help="How many sessions (with a rule fact) the LLM reads.")
@clean_errors
def bench_facts(data: str, out_dir: str, first: int, last: int, size: int, seed: int, llm: str | None,
                llm_sessions: int) -> None:
    """Rule facts and instructions found in the user turns of LongMemEval DATA haystacks, with a random sample
    of facts to judge by hand."""
    from convmem.extract.evaluate import sample_facts

    summary = sample_facts(data, out_dir, first=first, last=last, size=size, seed=seed, llm=llm,
                           llm_sessions=llm_sessions)
    click.echo(f"{summary['facts']} facts and {summary['instructions']} instructions in {summary['user_turns']} user "
               f"turns ({summary['turns_per_second']} turns/s); sample of {summary['sample']} in "
               f"{out_dir}/sample.jsonl")
    if "llm" in summary:
        r = summary["llm"]
        click.echo(f"LLM {r['model']}: {r['items_kept']} of {r['items_written']} items kept in {r['sessions']} sessions "
                   f"({r['not_json']} not JSON), {r['kept_also_found_by_rules']} also found by the rules; "
                   f"{r['seconds_per_session']} s per session")
