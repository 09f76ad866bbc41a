"""The `convmem` command: a thin mirror of `convmem.Memory`; each command calls one library method."""

from __future__ import annotations

import functools
import json
import sys
import time
from typing import Any, Callable

import click

from convmem.errors import ConvmemError, StoreError


def fail(message: str, code: int = 2) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def clean_errors(fn: Callable) -> Callable:
    """User mistakes and environment problems become one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreError as exc:
            fail(f"storage: {exc}", 1)
        except ConvmemError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper


db_option = click.option(
    "--db", "db", default=None, metavar="PATH|URL",
    help="SQLite file or postgresql:// URL (default: $CONVMEM_DB, else memory.db in the user data folder).",
)
tenant_option = click.option("--tenant", default="default", show_default=True, help="Tenant (isolation boundary).")


def page_options(fn: Callable) -> Callable:
    """`--limit` and `--offset` of a listing (the library's `limit`/`offset`)."""
    fn = click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0))(fn)
    return click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=1))(fn)


def check_extractor(facts_extractor: str | None, chat_model: str | None) -> None:
    """--facts-extractor llm needs --chat-model, which serves nothing else there (InputError otherwise)."""
    from convmem.errors import InputError

    if facts_extractor == "llm" and not chat_model:
        raise InputError("--facts-extractor llm needs --chat-model ('smollm2', a model path or an http(s):// URL)")
    if chat_model and facts_extractor != "llm":
        raise InputError("--chat-model is for --facts-extractor llm; add --facts-extractor llm")


def open_memory(db: str | None, tenant: str = "default", **kwargs: Any):
    from convmem.api import Memory

    return Memory(db, tenant=tenant, **kwargs)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="convmem")
def main() -> None:
    """convmem: long-term memory for LLM conversations."""


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["convmem", "openai", "locomo", "longmemeval"]), default="convmem",
              show_default=True, help="Format of FILE.")
@click.option("--user", default=None, help="Store every session under this user (overrides ids in the file).")
@click.option("--quiet", is_flag=True, help="No progress bar, no summary.")
@click.option("--embed/--defer-embedding", default=True, show_default=True,
              help="Embed new texts now, or store text only and embed on each user's first search (fast bulk loads).")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
@db_option
@tenant_option
@clean_errors
def import_(file: str, fmt: str, user: str | None, quiet: bool, embed: bool, as_json: bool, db: str | None,
            tenant: str) -> None:
    """Import conversations from FILE (JSON, JSON Lines, or either .gz). Idempotent."""
    from tqdm import tqdm

    from convmem.ingest import read_sessions

    sessions = read_sessions(file, fmt, user=user)
    mem = open_memory(db, tenant)
    total = sum(len(s.turns) for s in sessions)
    with tqdm(total=total, unit="turn", disable=quiet or as_json, desc="import", leave=False) as bar:
        report = mem.add_sessions(sessions, progress=bar.update, embed=embed)
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        r = report
        click.echo(f"{r.sessions_added} sessions added, {r.sessions_replaced} replaced, {r.sessions_unchanged} "
                   f"unchanged; {r.turns_written} turns ({r.texts_embedded} texts embedded) for {len(r.users)} "
                   f"user(s) in {r.seconds:.1f} s")


@main.command()
@click.argument("query")
@click.option("--user", required=True, help="Whose memory to search.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Number of hits.")
@click.option("--granularity", type=click.Choice(["turn", "session"]), default="turn", show_default=True)
@click.option("--since", default=None, help="Only turns at or after this ISO-8601 time.")
@click.option("--until", default=None, help="Only turns at or before this ISO-8601 time.")
@click.option("--speaker", "speakers", multiple=True, help="Only turns by this speaker (repeatable).")
@click.option("--neighbours", default=0, type=click.IntRange(min=0), help="Also show N turns around each hit.")
@click.option("--about", default=None, metavar="NAME",
              help="Rank turns spoken by this person or mentioning them first (first or full name).")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as a JSON list.")
@db_option
@tenant_option
@clean_errors
def search(query: str, user: str, k: int, granularity: str, since: str | None, until: str | None,
           speakers: tuple[str, ...], neighbours: int, about: str | None, as_json: bool, db: str | None,
           tenant: str) -> None:
    """Search one user's memory for QUERY."""
    mem = open_memory(db, tenant)
    start = time.perf_counter()
    hits = mem.search(query, user=user, k=k, granularity=granularity, since=since, until=until,
                      speakers=list(speakers) or None, neighbours=neighbours, about=about)
    elapsed = time.perf_counter() - start
    if as_json:
        emit_json([h.to_dict() for h in hits])
        return
    for n, h in enumerate(hits, 1):
        click.echo(f"{n:>2}. [{h.turn_id}] {h.timestamp:%Y-%m-%d} {h.speaker} ({h.role}) score={h.score:.4f}")
        click.echo(f"    {h.text[:300]}")
    click.echo(f"{len(hits)} hits in {elapsed * 1000:.1f} ms", err=True)


@main.command()
@click.argument("query")
@click.option("--user", required=True, help="Whose memory to use.")
@click.option("--budget", default=2000, show_default=True, type=click.IntRange(min=1), help="Token budget.")
@click.option("--since", default=None, help="Only turns at or after this ISO-8601 time.")
@click.option("--until", default=None, help="Only turns at or before this ISO-8601 time.")
@click.option("--instructions/--no-instructions", default=True, show_default=True,
              help="Put the user's standing instructions that apply to QUERY first.")
@click.option("--about", default=None, metavar="NAME",
              help="Rank turns spoken by this person or mentioning them first (first or full name).")
@click.option("--json", "as_json", is_flag=True, help="Print text, citations, token count and evidence as JSON.")
@db_option
@tenant_option
@clean_errors
def context(query: str, user: str, budget: int, since: str | None, until: str | None, instructions: bool,
            about: str | None, as_json: bool, db: str | None, tenant: str) -> None:
    """Assemble the memory block an LLM should read to answer QUERY."""
    ctx = open_memory(db, tenant).context(query, user=user, budget_tokens=budget, since=since, until=until,
                                          instructions=instructions, about=about)
    if as_json:
        emit_json(ctx.to_dict())
    else:
        click.echo(ctx.text)
        ev = ctx.evidence or {}
        click.echo(f"({ctx.tokens}/{ctx.budget_tokens} tokens by {ctx.tokenizer}, {len(ctx.citations)} turns; "
                   f"evidence {'found' if ev.get('found') else 'not found'}, confidence "
                   f"{ev.get('confidence', 0):.2f})", err=True)


@main.command()
@click.option("--user", required=True, help="Whose memory.")
@click.option("--json", "as_json", is_flag=True)
@db_option
@tenant_option
@clean_errors
def people(user: str, as_json: bool, db: str | None, tenant: str) -> None:
    """The people a user's memory knows: turns, sessions, mentions by others, first and last seen."""
    rows = open_memory(db, tenant).people(user)
    if as_json:
        emit_json(rows)
        return
    for p in rows:
        click.echo(f"{p['name']}\t{','.join(p['roles'])}\t{p['turns']} turns\t{p['sessions']} sessions\t"
                   f"mentioned {p['mentioned_by_others']}x\t{p['first_seen'][:10]} .. {p['last_seen'][:10]}")


@main.command()
@click.option("--user", required=True, help="Whose sessions to list.")
@page_options
@click.option("--json", "as_json", is_flag=True)
@db_option
@tenant_option
@clean_errors
def sessions(user: str, limit: int, offset: int, as_json: bool, db: str | None, tenant: str) -> None:
    """List one user's sessions, oldest first."""
    rows = open_memory(db, tenant).sessions(user=user, limit=limit, offset=offset)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['session_id']}\t{r['started_at']}\t{r['turns']} turns\t{', '.join(r['participants'])}")


@main.command()
@page_options
@click.option("--json", "as_json", is_flag=True)
@db_option
@tenant_option
@clean_errors
def users(limit: int, offset: int, as_json: bool, db: str | None, tenant: str) -> None:
    """List the users with memory in the tenant, by id."""
    ids = open_memory(db, tenant).users(limit=limit, offset=offset)
    if as_json:
        emit_json(ids)
        return
    for user in ids:
        click.echo(user)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@db_option
@tenant_option
@clean_errors
def stats(as_json: bool, db: str | None, tenant: str) -> None:
    """Counts of users, sessions, turns and embeddings in the store."""
    data = open_memory(db, tenant).stats()
    if as_json:
        emit_json(data)
    else:
        for key, value in data.items():
            click.echo(f"{key}: {value}")


@main.command()
@click.option("--user", required=True, help="Whose memory to remove.")
@click.option("--session", default=None, help="Only this session.")
@db_option
@tenant_option
@clean_errors
def forget(user: str, session: str | None, db: str | None, tenant: str) -> None:
    """Remove a user's memory (or one session): turns, embeddings and index entries."""
    removed = open_memory(db, tenant).forget(user=user, session=session)
    click.echo(f"removed {removed} turns")


from convmem.cli.bench import bench  # noqa: E402  (subcommands defined in their own modules)
from convmem.cli.migrate import migrate  # noqa: E402
from convmem.cli.serve import keys, mcp, serve  # noqa: E402
from convmem.bench.reliability import reliability  # noqa: E402
from convmem.bench.scale import scale  # noqa: E402
from convmem.longctx.cli import longctx  # noqa: E402

for command in (bench, migrate, serve, mcp, keys):
    main.add_command(command)
for command in (scale, reliability, longctx):
    bench.add_command(command)

from convmem.cli.memory import bench_facts, bench_instructions, facts, instructions, reextract  # noqa: E402

main.add_command(facts)
main.add_command(reextract)
main.add_command(instructions)
bench.add_command(bench_instructions)
bench.add_command(bench_facts)

from convmem.cli.summaries import locomo_events, summaries  # noqa: E402

main.add_command(summaries)
bench.add_command(locomo_events)
