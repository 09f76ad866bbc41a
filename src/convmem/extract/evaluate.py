"""Precision/recall of standing-instruction selection on a labelled set (`convmem bench instructions`), and a
sample of rule facts from real user turns to judge by hand (`convmem bench facts`).

The set (default: the shipped `convmem/data/instructions_eval.jsonl`, written for convmem) has lines of three
types: "about"; "user" (a user id and its instructions, each with an id and text); "request" (id, split dev|test,
user, request text, and the ids of the instructions a correct assistant must apply). Every user's instructions
are set through `Memory.add_instruction` in a throwaway SQLite store, and each request goes through
`Memory.applicable_instructions`, the path `Memory.context` uses. Scores are micro-averaged over (request,
instruction) pairs. A second rule is measured beside the default: allergies treated as topical, not always on.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from importlib import resources
from typing import Any

from convmem.errors import FormatError


def load_set(path: str | None = None) -> tuple[dict[str, list[dict]], list[dict]]:
    text = open(path, encoding="utf-8").read() if path else \
        resources.files("convmem").joinpath("data/instructions_eval.jsonl").read_text(encoding="utf-8")
    source = path or "instructions_eval.jsonl"
    users: dict[str, list[dict]] = {}
    requests: list[dict] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"not JSON: {exc.msg}", source=source, item=f"line {n}") from exc
        kind = row.get("type") if isinstance(row, dict) else None
        if kind == "user":
            users[str(row["user"])] = row["instructions"]
        elif kind == "request":
            for key in ("id", "user", "request", "expected"):
                if key not in row:
                    raise FormatError(f"a request needs {key!r}", source=source, item=f"line {n}")
            requests.append(row)
        elif kind != "about":
            raise FormatError("type must be about, user or request", source=source, item=f"line {n}")
    for r in requests:
        if r["user"] not in users:
            raise FormatError(f"request {r['id']} names unknown user {r['user']!r}", source=source)
    return users, requests


def _scores(pairs: list[tuple[set[str], set[str]]]) -> dict[str, Any]:
    tp = sum(len(got & exp) for got, exp in pairs)
    fp = sum(len(got - exp) for got, exp in pairs)
    fn = sum(len(exp - got) for got, exp in pairs)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"requests": len(pairs), "tp": tp, "fp": fp, "fn": fn, "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0,
            "exact": round(sum(got == exp for got, exp in pairs) / len(pairs), 4) if pairs else 0.0}


def run(out_dir: str, *, data: str | None = None, threshold: float | None = None,
        embedder: str = "minilm") -> dict[str, Any]:
    from convmem.api import Memory

    users, requests = load_set(data)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Memory(os.path.join(tmp, "eval.db"), embedder=embedder) as mem:
        if threshold is not None:
            mem.instruction_threshold = threshold
        ids: dict[str, dict[str, str]] = {}
        for user, items in users.items():
            ids[user] = {mem.add_instruction(user, i["text"]).instruction_id: i["id"] for i in items}
        rules = {
            "default (allergy, language, format, address always on)":
                lambda user, q: mem.applicable_instructions(user, q),
            "variant: allergies topical":
                lambda user, q: mem._select([dataclasses.replace(i, always_on=i.always_on and i.kind != "allergy")
                                             for i in mem.instructions(user)], q, None),
        }
        out_rules = []
        for name, pick in rules.items():
            rows = []
            for r in requests:
                chosen = pick(r["user"], r["request"])
                got = {ids[r["user"]][s.instruction.instruction_id] for s in chosen}
                rows.append({"id": r["id"], "split": r.get("split", "all"), "request": r["request"],
                             "expected": sorted(r["expected"]), "selected": sorted(got),
                             "reasons": {ids[r["user"]][s.instruction.instruction_id]: s.reason for s in chosen}})
            splits = {"all": _scores([(set(x["selected"]), set(x["expected"])) for x in rows])}
            for split in sorted({x["split"] for x in rows}):
                splits[split] = _scores([(set(x["selected"]), set(x["expected"])) for x in rows if x["split"] == split])
            out_rules.append({"rule": name, "splits": splits, "requests": rows})
        threshold_used = mem.instruction_threshold
    results = {"data": data or "convmem/data/instructions_eval.jsonl", "users": len(users),
               "instructions": sum(len(v) for v in users.values()), "requests": len(requests),
               "threshold": threshold_used, "embedder": embedder, "seconds": round(time.perf_counter() - start, 2),
               "rules": out_rules}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, ensure_ascii=False)
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(report(results))
    return results


def report(results: dict[str, Any]) -> str:
    lines = [f"# Standing-instruction selection ({results['requests']} requests, {results['users']} users, "
             f"{results['instructions']} instructions; MiniLM threshold {results['threshold']})", "",
             "| rule | split | requests | precision | recall | F1 | exact set |", "|---|---|---|---|---|---|---|"]
    for rule in results["rules"]:
        for split, s in rule["splits"].items():
            lines.append(f"| {rule['rule']} | {split} | {s['requests']} | {s['precision']:.3f} | {s['recall']:.3f} "
                         f"| {s['f1']:.3f} | {s['exact']:.3f} |")
    lines += ["", "## Errors of the default rule", ""]
    for row in results["rules"][0]["requests"]:
        extra, missed = sorted(set(row["selected"]) - set(row["expected"])), sorted(set(row["expected"]) -
                                                                                       set(row["selected"]))
        if extra or missed:
            lines.append(f"- {row['id']} ({row['split']}) {row['request']!r}: extra {extra}, missed {missed}")
    return "\n".join(lines) + "\n"


def sample_facts(path: str, out_dir: str, *, first: int = 0, last: int = 40, size: int = 40,
                 seed: int = 31, llm: str | None = None, llm_sessions: int = 10) -> dict[str, Any]:
    """Rule facts of the user turns of LongMemEval haystacks `first`..`last`: counts, speed, and a random sample
    (`sample.jsonl`, one fact with its sentence per line) to judge by hand for precision.

    With `llm` (a chat model spec), the LLM extractor also runs on the first `llm_sessions` sessions holding a
    rule fact: how many items it wrote, how many validation kept, which values the rules also found, and the
    seconds per session (`llm.jsonl` holds its facts to judge)."""
    import hashlib

    from convmem.extract.facts import extract_facts
    from convmem.extract.instructions import extract_instructions
    from convmem.ingest import parse_sessions, read_data

    items = read_data(path)
    if not isinstance(items, list):
        raise FormatError("expected a LongMemEval list of questions", source=path)
    facts, instructions, turns, user_turns, seconds = [], [], 0, 0, 0.0
    with_facts = []
    for item in items[first:last]:
        for s in parse_sessions([item], "longmemeval", source=path):
            start = time.perf_counter()
            found = extract_facts(s.turns, s.session_id, s.started_at)
            if found and len(with_facts) < llm_sessions:
                with_facts.append((s, found))
            said = extract_instructions(s.user, s.turns, s.session_id, s.started_at)
            seconds += time.perf_counter() - start
            facts += [{"user": s.user, "attribute": f.attribute, "value": f.value, "sentence": f.evidence}
                      for f in found]
            instructions += [{"user": s.user, "kind": i.kind, "text": i.text} for i in said]
            turns += len(s.turns)
            user_turns += sum(t.role == "user" for t in s.turns)
    # sampled by a seeded hash of each fact, so a rule change that adds or drops a few facts changes only those
    # entries of the sample
    facts.sort(key=lambda x: hashlib.sha256(f"{seed}\0{x['user']}\0{x['attribute']}\0{x['value']}\0{x['sentence']}"
                                            .encode("utf-8", "surrogatepass")).hexdigest())
    summary = {"data": path, "haystacks": [first, last], "turns": turns, "user_turns": user_turns,
               "facts": len(facts), "instructions": len(instructions), "extract_seconds": round(seconds, 3),
               "turns_per_second": round(turns / seconds) if seconds else None, "seed": seed,
               "sample": min(size, len(facts))}
    os.makedirs(out_dir, exist_ok=True)
    if llm:
        summary["llm"] = _llm_round(llm, with_facts, os.path.join(out_dir, "llm.jsonl"))
    with open(os.path.join(out_dir, "sample.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in facts[:size])
    with open(os.path.join(out_dir, "instructions.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in instructions)
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    return summary


def _llm_round(spec: str, sessions: list, out_path: str) -> dict[str, Any]:
    from convmem.extract.facts import norm_value
    from convmem.extract.facts_llm import llm_facts_raw
    from convmem.providers.chat import load_chat_model
    from convmem.providers.chat_json import JSONOutputError

    model = load_chat_model(spec)
    written = kept = agreed = failed = 0
    start = time.perf_counter()
    with open(out_path, "w", encoding="utf-8") as out:
        for session, rule_facts in sessions:
            try:
                found, raw = llm_facts_raw(model, session)
            except JSONOutputError:
                failed += 1
                continue
            rule_values = {norm_value(f.value) for f in rule_facts}
            written, kept = written + raw, kept + len(found)
            agreed += sum(norm_value(f.value) in rule_values for f in found)
            out.writelines(json.dumps({"session": session.session_id, "attribute": f.attribute, "value": f.value,
                                       "turn": f.evidence, "rules_too": norm_value(f.value) in rule_values},
                                      ensure_ascii=False) + "\n" for f in found)
    seconds = time.perf_counter() - start
    return {"model": getattr(model, "name", spec), "sessions": len(sessions), "not_json": failed,
            "items_written": written, "items_kept": kept, "kept_also_found_by_rules": agreed,
            "seconds_per_session": round(seconds / len(sessions), 1) if sessions else None}
