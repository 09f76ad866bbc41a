"""A length x depth x method grid: generate instances, run them, write results as they come.

`run_grid` is what `convmem bench longctx` calls; results are appended to `out/results.json` after every
instance, and cells already there are skipped (`resume`), so a long run can be stopped and continued.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convmem.errors import InputError
from convmem.longctx import report
from convmem.longctx.tasks import get_task

METHODS = ("full", "streaming", "lm-infinite", "h2o", "sirllm", "memory")


@dataclass
class Grid:
    tasks: Sequence[str]
    lengths: Sequence[int]
    depths: Sequence[float]
    methods: Sequence[str] = ("full",)
    samples: int = 1
    seed: int = 0
    task_args: dict[str, Any] = field(default_factory=dict)
    policy_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_new_tokens: int = 32
    chunk_size: int = 512
    chat: bool | None = None
    endpoint: str | None = None
    endpoint_model: str | None = None
    api_key: str | None = None

    def check(self) -> None:
        if not self.tasks or not self.lengths:
            raise InputError("give at least one task and one length")
        if self.samples < 1:
            raise InputError("samples must be >= 1")
        for m in self.methods:
            if m not in METHODS:
                raise InputError(f"unknown method {m!r}; use one of {', '.join(METHODS)}")
        from convmem.longctx.memory_runner import MEMORY_ARGS, _positive

        memory_args = self.policy_args.get("memory", {})
        unknown = set(memory_args) - set(MEMORY_ARGS)
        if unknown:
            raise InputError(f"unknown --policy-arg for memory: {', '.join(sorted(unknown))}; "
                             f"use {', '.join(MEMORY_ARGS)}")
        for name in ("budget_tokens", "turn_tokens", "session_tokens"):
            if name in memory_args:
                _positive(memory_args[name], name)
        if self.endpoint and "memory" in self.methods:
            raise InputError("method memory reads with the local model; run it without --endpoint")
        if self.endpoint and not self.endpoint_model:
            raise InputError("--endpoint needs --endpoint-model (the model name the server expects)")


def cells(grid: Grid):
    """Every (task, length, depth, seed) of the grid."""
    for task_name in grid.tasks:
        task = get_task(task_name, **grid.task_args.get(task_name, {}))
        depths = grid.depths if task.uses_depth else [None]
        for n in grid.lengths:
            for d in depths:
                for s in range(grid.seed, grid.seed + grid.samples):
                    yield task, n, d, s


def run_grid(grid: Grid, out: Path, *, model=None, tokenizer=None, show_progress: bool = True,
             resume: bool = True, meta: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run the grid (local `model`+`tokenizer`, or the endpoint); returns every record (old ones included)."""
    from convmem.longctx.memory_runner import run_memory
    from convmem.longctx.runners import run_local, run_openai

    grid.check()
    out.mkdir(parents=True, exist_ok=True)
    records = report.load_records(out / "results.json") if resume else []
    done = {(r["task"], r["method"], r["n_tokens"], r["depth"], r["seed"]) for r in records}
    grid_meta = {k: v for k, v in vars(grid).items() if k != "api_key"}
    grid_meta["task_args"] = {  # a corpus is recorded by size, not copied into every results file
        t: {k: (f"<{len(v)} items>" if isinstance(v, (list, tuple)) else v) for k, v in a.items()}
        for t, a in grid.task_args.items()
    }
    previous = report.load_meta(out / "results.json") if resume else {}
    history = previous.get("history", []) + ([previous["command"]] if previous.get("command") else [])
    meta = {**(meta or {}), "history": history, "grid": grid_meta,
            "machine": platform.platform(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    methods = [f"endpoint:{grid.endpoint_model}"] if grid.endpoint else list(grid.methods)
    todo = [(m, *unit) for unit in cells(grid) for m in methods]
    todo = [t for t in todo if (t[1].name, t[0], t[2], t[3], t[4]) not in done]
    # short lengths first, methods side by side, so a stopped run leaves complete small cells
    todo.sort(key=lambda t: (t[2], t[1].name, t[3] if t[3] is not None else -1, t[4], methods.index(t[0])))

    def save(rec):
        records.append(rec.to_dict())
        report.write_results(out / "results.json", records, meta)

    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="longctx", unit="run")
    memory_args = dict(grid.policy_args.get("memory", {}))
    for method, task, n, depth, seed in todo:
        inst = task.generate(n, depth=depth, seed=seed, tokenizer=tokenizer)
        if grid.endpoint:
            recs = run_openai([inst], model=grid.endpoint_model, base_url=grid.endpoint, api_key=grid.api_key,
                              max_tokens=grid.max_new_tokens, show_progress=False)
        elif method == "memory":
            from convmem.providers.embedders import Embedder, load_embedder

            if not isinstance(memory_args.get("embedder"), Embedder):  # loaded once for every cell
                memory_args["embedder"] = load_embedder(memory_args.get("embedder"))
            recs = run_memory([inst], model, tokenizer, **memory_args, max_new_tokens=grid.max_new_tokens,
                              chunk_size=grid.chunk_size, chat=grid.chat, show_progress=False)
        else:
            recs = run_local([inst], model, tokenizer, _policy(method, grid.policy_args.get(method, {})),
                             max_new_tokens=grid.max_new_tokens, chunk_size=grid.chunk_size, chat=grid.chat,
                             show_progress=False, method=method)
        for rec in recs:
            save(rec)
            if bar is not None:
                bar.set_postfix_str(f"{task.name} {method} {n} d={depth} score={rec.score:.2f}")
                bar.update(1)
    if bar is not None:
        bar.close()
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    report.write_results(out / "results.json", records, meta)
    return records


def _policy(method: str, args: dict[str, Any]):
    from convmem.longctx.kv import get_policy

    try:
        return get_policy(method, **args)
    except TypeError as exc:
        raise InputError(f"bad --policy-arg for {method}: {exc}") from exc


def parse_value(text: str) -> Any:
    """'12' -> 12, '0.5' -> 0.5, 'true' -> True, 'null' -> None, anything else stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text
