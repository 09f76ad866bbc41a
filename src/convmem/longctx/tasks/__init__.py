"""Task families by name. `get_task("niah_multikey", n_keys=8).generate(4096, depth=0.25, seed=1)`.

Every registered name maps to a family class and its default arguments, so a run log can record
`{"task": name, "args": {...}}` and be replayed.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from convmem.errors import InputError, NotFound
from convmem.longctx.tasks.adaleval import BestAnswer, TSort
from convmem.longctx.tasks.base import Block, Budget, Draft, Task, TaskInstance
from convmem.longctx.tasks.needle_threading import NeedleThreading
from convmem.longctx.tasks.needlebench import AncestralTrace, MultiNeedleReasoning
from convmem.longctx.tasks.niah import Niah, Passkey
from convmem.longctx.tasks.variable_tracking import VariableTracking

TASKS: dict[str, tuple[type[Task], dict[str, Any]]] = {}


def register(name: str, family: type[Task], **defaults: Any) -> None:
    """Register `family` with default arguments under `name`."""
    TASKS[name] = (family, defaults)


register("passkey", Passkey)
register("niah_single", Niah)
register("niah_single_uuid", Niah, value_type="uuids")
register("niah_multikey", Niah, n_keys=4)
register("niah_multivalue", Niah, n_values=4)
register("niah_multiquery", Niah, n_keys=4, n_queries=4)
register("needlebench_reasoning", MultiNeedleReasoning)
register("atc_eldest", AncestralTrace, question="eldest")
register("atc_nth_ancestor", AncestralTrace, question="nth_ancestor")
register("atc_nth_descendant", AncestralTrace, question="nth_descendant")
register("atc_distance", AncestralTrace, question="distance")
register("needle_threading", NeedleThreading)
register("needle_multithreading", NeedleThreading, n_threads=3)
register("tsort", TSort)
register("bestanswer", BestAnswer)
register("variable_tracking", VariableTracking)


def get_task(name: str, **args: Any) -> Task:
    """The task registered as `name`, with `args` over its defaults."""
    if name not in TASKS:
        raise NotFound(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    family, defaults = TASKS[name]
    known = {f.name for f in fields(family)}
    unknown = set(args) - known
    if unknown:
        raise InputError(
            f"task {name!r} has no parameter {', '.join(sorted(unknown))}; it takes {', '.join(sorted(known))}"
        )
    task = family(**{**defaults, **args})
    task.name = name
    return task


__all__ = [
    "TASKS", "AncestralTrace", "BestAnswer", "Block", "Budget", "Draft", "MultiNeedleReasoning", "NeedleThreading",
    "Niah", "Passkey", "TSort", "Task", "TaskInstance", "VariableTracking", "get_task", "register",
]
