"""`make demo`: import the shipped demo conversation and show evidence, context and timings for a few questions."""

from __future__ import annotations

import os
import tempfile
import time
from importlib import resources

from convmem import Memory

QUESTIONS = [
    "When is my sister's wedding?",
    "What is my dog called?",
    "Which city am I moving to?",
    "Anything I can't eat?",
]


def main() -> None:
    demo = resources.files("convmem") / "data" / "demo.jsonl"
    with tempfile.TemporaryDirectory() as tmp, resources.as_file(demo) as path:
        db = os.path.join(tmp, "demo.db")
        t0 = time.perf_counter()
        mem = Memory(db)
        report = mem.import_file(path, format="convmem")
        print(f"Imported {report.sessions_added} sessions, {report.turns_written} turns for user 'sam' "
              f"in {time.perf_counter() - t0:.2f} s (model load included)\n")
        mem.search("warm up", user="sam")  # first query builds the user's index
        for question in QUESTIONS:
            t0 = time.perf_counter()
            hits = mem.search(question, user="sam", k=3)
            search_ms = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            ctx = mem.context(question, user="sam", budget_tokens=300)
            context_ms = (time.perf_counter() - t0) * 1000
            print("=" * 100)
            print(f"Q: {question}")
            print(f"Top evidence ({search_ms:.1f} ms):")
            for hit in hits:
                print(f"  [{hit.turn_id}] {hit.timestamp:%Y-%m-%d} {hit.speaker}: {hit.text[:110]}")
            print(f"Context for an LLM ({ctx.tokens}/{ctx.budget_tokens} tokens, {ctx.tokenizer}, {context_ms:.1f} ms):")
            for line in ctx.text.splitlines():
                print("  | " + line[:150])
        mem.close()


if __name__ == "__main__":
    main()
