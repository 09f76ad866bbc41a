"""results.json, report.md and one depth x length heatmap PNG per method, from runner records."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from convmem.errors import require


def load_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return json.loads(path.read_text()).get("records", [])


def load_meta(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    return json.loads(path.read_text()).get("meta", {})


def write_results(path: Path, records: Iterable[dict[str, Any]], meta: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "records": list(records)}, indent=1))
    tmp.replace(path)


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def grid(records: list[dict[str, Any]], task: str, method: str):
    """(lengths, depths, mean score matrix [length][depth] with None where nothing ran)."""
    cells = defaultdict(list)
    for r in records:
        if r["task"] == task and r["method"] == method:
            cells[(r["n_tokens"], r["depth"])].append(r["score"])
    lengths = sorted({n for n, _ in cells})
    depths = sorted({d for _, d in cells}, key=lambda d: -1 if d is None else d)
    return lengths, depths, [[_mean(cells.get((n, d), [])) for d in depths] for n in lengths]


def _fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def summary_rows(records: list[dict[str, Any]]):
    """One row per (task, method, length): mean score, samples, tokens/s, peak KV and RSS."""
    groups = defaultdict(list)
    for r in records:
        groups[(r["task"], r["method"], r["n_tokens"])].append(r)
    rows = []
    for (task, method, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        rows.append({
            "task": task, "method": method, "n_tokens": n, "score": _mean(r["score"] for r in rs), "n": len(rs),
            "tokens_per_s": _mean(r.get("tokens_per_s") for r in rs),
            "kv_peak_mb": max((r.get("kv_peak_mb") or 0 for r in rs), default=None) or None,
            "rss_peak_mb": max((r.get("rss_peak_mb") or 0 for r in rs), default=None) or None,
            "errors": sum(1 for r in rs if r.get("error")),
        })
    return rows


MEMORY_FIELDS = ("needle_in_context", "context_tokens", "turns", "sessions", "ingest_s", "retrieve_s", "read_s")


def memory_rows(records: list[dict[str, Any]]):
    """One row per (task, method, length) of the memory runner: score and the means of its retrieval figures."""
    groups = defaultdict(list)
    for r in records:
        if "needle_in_context" in (r.get("extra") or {}):
            groups[(r["task"], r["method"], r["n_tokens"])].append(r)
    rows = []
    for (task, method, n), rs in sorted(groups.items()):
        row = {"task": task, "method": method, "n_tokens": n, "score": _mean(r["score"] for r in rs),
               "prompt_tokens": _mean(r.get("prompt_tokens") for r in rs)}
        row.update({k: _mean(r["extra"].get(k) for r in rs) for k in MEMORY_FIELDS})
        rows.append(row)
    return rows


def write_markdown(path: Path, records: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    lines = ["# Long-context run", "", f"Command: `{meta.get('command', '')}`", ""]
    if meta.get("history"):
        lines += ["Earlier commands into the same folder:", ""] + [f"- `{c}`" for c in meta["history"]] + [""]
    for k in ("model", "runner", "started", "finished"):
        if meta.get(k):
            lines.append(f"- {k}: {meta[k]}")
    lines += ["", "## Summary", "",
              "| task | method | tokens | score | n | tokens/s | KV peak MB | RSS peak MB | errors |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in summary_rows(records):
        lines.append(f"| {r['task']} | {r['method']} | {r['n_tokens']} | {_fmt(r['score'])} | {r['n']} | "
                     f"{_fmt(r['tokens_per_s'], 0)} | {_fmt(r['kv_peak_mb'], 0)} | {_fmt(r['rss_peak_mb'], 0)} | "
                     f"{r['errors']} |")
    memory = memory_rows(records)
    if memory:
        lines += ["", "## Memory runner: retrieval and reading", "",
                  "needle in context: fraction of the references in the retrieved block (retrieval recall); "
                  "times are means per instance.", "",
                  "| task | method | tokens | score | needle in context | context tokens | reader prompt | turns | "
                  "sessions | ingest s | retrieve s | read s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in memory:
            lines.append(f"| {r['task']} | {r['method']} | {r['n_tokens']} | {_fmt(r['score'])} | "
                         f"{_fmt(r['needle_in_context'])} | {_fmt(r['context_tokens'], 0)} | "
                         f"{_fmt(r['prompt_tokens'], 0)} | {_fmt(r['turns'], 0)} | {_fmt(r['sessions'], 0)} | "
                         f"{_fmt(r['ingest_s'], 2)} | {_fmt(r['retrieve_s'], 3)} | {_fmt(r['read_s'], 1)} |")
    for task in sorted({r["task"] for r in records}):
        for method in sorted({r["method"] for r in records if r["task"] == task}):
            lengths, depths, m = grid(records, task, method)
            lines += ["", f"## {task} / {method}: score by length (rows) and depth (columns)", "",
                      "| tokens | " + " | ".join("-" if d is None else f"{d:g}" for d in depths) + " |",
                      "|---|" + "---|" * len(depths)]
            for n, row in zip(lengths, m, strict=True):
                lines.append(f"| {n} | " + " | ".join(_fmt(x) for x in row) + " |")
    path.write_text("\n".join(lines) + "\n")


def heatmap(path: Path, records: list[dict[str, Any]], task: str, method: str) -> bool:
    """Depth (y) x length (x) heatmap of mean scores; False when there is nothing to draw."""
    lengths, depths, m = grid(records, task, method)
    if not lengths:
        return False
    matplotlib = require("matplotlib", "bench", "drawing heatmaps")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [[math.nan if m[i][j] is None else m[i][j] for i in range(len(lengths))] for j in range(len(depths))]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(lengths), 1.0 + 0.5 * len(depths)))
    im = ax.imshow(data, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(lengths)), [str(n) for n in lengths])
    ax.set_yticks(range(len(depths)), ["-" if d is None else f"{d:g}" for d in depths])
    ax.set_xlabel("tokens")
    ax.set_ylabel("needle depth")
    ax.set_title(f"{task} / {method}")
    for j, row in enumerate(data):
        for i, x in enumerate(row):
            if not math.isnan(x):
                ax.text(i, j, f"{x:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_all(out: Path, records: list[dict[str, Any]], meta: dict[str, Any]) -> list[Path]:
    """results.json, report.md and heatmap-<task>-<method>.png under `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    write_results(out / "results.json", records, meta)
    write_markdown(out / "report.md", records, meta)
    files = [out / "results.json", out / "report.md"]
    for task in sorted({r["task"] for r in records}):
        for method in sorted({r["method"] for r in records if r["task"] == task}):
            png = out / f"heatmap-{task}-{method.replace(':', '_').replace('/', '_')}.png"
            if heatmap(png, records, task, method):
                files.append(png)
    return files
