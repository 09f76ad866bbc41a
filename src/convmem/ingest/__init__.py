"""Importers: files in convmem's own format, OpenAI-style messages, LoCoMo and LongMemEval become `Session`s.

Each importer is one module with `parse(data, *, source, user=None) -> list[Session]`. A whole file is parsed and
validated before anything is written, so a malformed item anywhere means nothing from that file is stored.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any, Callable

from convmem.errors import FormatError, InputError
from convmem.ingest import convmem_format, locomo, longmemeval, openai_format
from convmem.models import Session

FORMATS: dict[str, Callable[..., list[Session]]] = {
    "convmem": convmem_format.parse,
    "openai": openai_format.parse,
    "locomo": locomo.parse,
    "longmemeval": longmemeval.parse,
}


def read_data(path: str | os.PathLike[str]) -> Any:
    """JSON, JSON Lines (one value per line) or either gzipped (`.gz`), read from a local path."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise FormatError(f"cannot read it as UTF-8 text ({exc})", source=path) from exc
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise FormatError("JSON nested too deeply", source=path) from exc
    except json.JSONDecodeError as first:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) < 2:
            raise FormatError(f"not valid JSON ({first})", source=path) from first
        out = []
        for n, line in enumerate(lines, start=1):
            try:
                out.append(json.loads(line))
            except RecursionError as exc:
                raise FormatError(f"line {n}: JSON nested too deeply", source=path) from exc
            except json.JSONDecodeError as exc:
                raise FormatError(f"line {n} is not valid JSON ({exc.msg})", source=path) from exc
        return out


def parse_sessions(data: Any, fmt: str, *, source: str = "<data>", user: str | None = None, **options) -> list[Session]:
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return FORMATS[fmt](data, source=source, user=user, **options)


def read_sessions(path: str | os.PathLike[str], fmt: str, *, user: str | None = None, **options) -> list[Session]:
    return parse_sessions(read_data(path), fmt, source=os.fspath(path), user=user, **options)


__all__ = ["FORMATS", "parse_sessions", "read_data", "read_sessions"]
