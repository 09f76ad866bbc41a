"""`convmem bench ...`: benchmark commands (each writes results.json, report.md and plots into --out)."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks: LongMemEval, LoCoMo, speed, long context."""
