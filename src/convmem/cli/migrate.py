"""`convmem migrate --from URL --to URL`: a thin mirror of `convmem.store.migrate.migrate`."""

from __future__ import annotations

import click

from convmem.cli import clean_errors, emit_json


@click.command("migrate")
@click.option("--from", "source", required=True, metavar="PATH|URL",
              help="Store to copy from (SQLite file or postgresql:// URL).")
@click.option("--to", "target", required=True, metavar="PATH|URL", help="Store to copy into (created if needed).")
@click.option("--tenant", "tenants", multiple=True, help="Only this tenant (repeatable; default: every tenant).")
@click.option("--quiet", is_flag=True, help="No progress bar, no summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the migration report as JSON.")
@clean_errors
def migrate(source: str, target: str, tenants: tuple[str, ...], quiet: bool, as_json: bool) -> None:
    """Copy sessions, turns, users and embeddings from one store to another, then verify the copy.

    Resumable: run the same command again after an interruption; sessions already copied are skipped.
    Exits with status 1 when the verification (counts and content hash per tenant) fails.
    """
    from tqdm import tqdm

    from convmem.store.migrate import migrate as run_migration

    with tqdm(unit="turn", disable=quiet or as_json, desc="migrate", leave=False) as bar:
        report = run_migration(source, target, tenants=list(tenants) or None, progress=bar.update)
    if as_json:
        emit_json(report.to_dict())
    elif not quiet:
        t = report.totals()
        click.echo(f"{len(report.tenants)} tenant(s): {t['sessions_copied']} sessions copied "
                   f"({t['turns_copied']} turns), {t['sessions_skipped']} already there; {t['embeddings_copied']} "
                   f"embeddings copied, {t['embeddings_skipped']} already there; {report.seconds:.1f} s")
        for rep in report.tenants:
            state = "verified" if rep.verified else "MISMATCH"
            click.echo(f"  {rep.tenant}: {state} (source {rep.source_counts}, target {rep.target_counts})")
    if not report.verified:
        click.echo("Error: the copy does not match the source (see above); run the command again", err=True)
        raise SystemExit(1)
