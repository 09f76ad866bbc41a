"""`convmem bench locomo-events`: LoCoMo event summarization, per speaker and range of sessions.

An item is (conversation, speaker, a range of `window` consecutive sessions); its gold is the speaker's events of
those sessions in the file's `event_summary` (`events_session_N`), joined in order. Items whose gold is empty are
counted, not scored. Predictions, all from the conversation as convmem stores it (imported like
`convmem bench locomo`, so a `--db` shared with it is reused):

- `extractive` (no LLM): the speaker's turns in the range; each sentence scored as an event (a first-person
  statement with a past-tense verb or a time cue: "I went to a support group yesterday") times its centrality among
  the speaker's sentences of the range (MiniLM vectors of their turns, as in the session summaries); the best
  sentence of each session and up to `per_session` - 1 more that read as events, in the order said, turned into the third person ("I" -> the speaker's name,
  "my" -> "their").
- `lead` (a baseline): the speaker's first `per_session` statements (not questions) of each session, same rewrite.
- `llm` (with `--reader`): the reader LLM is shown the speaker's turns of the range and asked for the events, one
  short third-person sentence a line.

Scores per item: ROUGE-1/2/L F1 (`bench/rouge.py`, identical to the `rouge-score` package with its stemmer) and the
LoCoMo QA token F1 (`locomo_score.f1_score`); means over the scored items.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from convmem.bench.common import data_info, import_items, provenance, write_jsonl
from convmem.bench.locomo_score import f1_score
from convmem.bench.rouge import rouge
from convmem.errors import InputError
from convmem.extract.summaries import cut_words, sentences

TENANT = "bench-locomo"  # the tenant of `convmem bench locomo`, so one --db serves both
METHODS = ("extractive", "lead")
_SESSION = re.compile(r"^session_(\d+)$")
_FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'd|we|we're|we've|my|our)\b", re.I)
_TIME_CUE = re.compile(r"\b(yesterday|today|tonight|last|ago|recently|just|finally|this (week|weekend|month|year)|"
                       r"next|tomorrow|started|joined|decided)\b", re.I)
_PAST = re.compile(r"\b(\w{3,}ed|went|got|made|took|met|saw|began|bought|found|had|did|won|lost|left|gave|ran|"
                   r"wrote|read|built|came|felt|told|heard|became|spent|kept|brought|taught|sold|chose)\b", re.I)
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
_REWRITES = [(re.compile(p, re.I), r) for p, r in (
    (r"\bI'm\b", "{s} is"), (r"\bI've\b", "{s} has"), (r"\bI'll\b", "{s} will"), (r"\bI'd\b", "{s} would"),
    (r"\bI\b", "{s}"), (r"\bmy\b", "their"), (r"\bmine\b", "theirs"), (r"\bmyself\b", "themselves"),
    (r"\bme\b", "{s}"))]
LLM_PROMPT = ("List the events in {s}'s life that {s} tells about in these messages: one short sentence per event, "
              "in the third person, starting with \"{s}\". One event per line, at most {n} lines, nothing else.")


def third_person(sentence: str, speaker: str) -> str:
    for pattern, repl in _REWRITES:
        sentence = pattern.sub(repl.format(s=speaker), sentence)
    return sentence


def event_weight(sentence: str) -> float:
    """1 for a first-person statement with a past-tense verb or a time cue, 0.3 for other statements, 0 for
    questions."""
    if sentence.rstrip().endswith("?"):
        return 0.0
    if _FIRST_PERSON.search(sentence) and (_PAST.search(sentence) or _TIME_CUE.search(sentence)):
        return 1.0
    return 0.3


def session_number(session_id: str) -> int | None:
    m = _SESSION.match(session_id)
    return int(m.group(1)) if m else None


def items_of(sample: dict, window: int) -> tuple[list[dict], int]:
    """(items with gold, number of (speaker, range) pairs with no gold event)."""
    conv, events = sample["conversation"], sample.get("event_summary") or {}
    if not isinstance(events, dict):
        raise InputError(f"LoCoMo sample {sample.get('sample_id')!r}: event_summary must be an object")
    numbers = sorted(n for k in conv if (n := session_number(k)) is not None and isinstance(conv[k], list))
    speakers = [conv.get("speaker_a"), conv.get("speaker_b")]
    items, empty = [], 0
    for start in range(0, len(numbers), window):
        rng = numbers[start:start + window]
        for speaker in speakers:
            gold = [e for n in rng for e in (events.get(f"events_session_{n}") or {}).get(speaker) or []
                    if isinstance(e, str) and e.strip()]
            if not gold:
                empty += 1
                continue
            items.append({"sample_id": str(sample["sample_id"]), "speaker": speaker, "sessions": rng,
                          "gold": " ".join(gold), "gold_events": len(gold)})
    return items, empty


def _candidates(index, speaker: str, sessions: Sequence[int]) -> list[tuple[int, int, str]]:
    """(session number, row, sentence) of the speaker's sentences in the sessions, in order."""
    wanted = {f"session_{n}" for n in sessions}
    out = []
    for i, r in enumerate(index.rows):
        if r.speaker == speaker and r.session_id in wanted:
            text = r.text.split(" [shares a photo:")[0]
            out += [(session_number(r.session_id), i, s) for s in sentences(text)]
    return out


def predict(index, speaker: str, sessions: Sequence[int], method: str, per_session: int = 2) -> str:
    cands = _candidates(index, speaker, sessions)
    if not cands:
        return ""
    if method == "lead":
        picked = []
        for n in sessions:
            picked += [c for c in cands if c[0] == n and event_weight(c[2]) > 0][:per_session]
    else:
        rows = np.asarray([c[1] for c in cands])
        vecs = index.vectors[rows] if index.vectors.shape[1] else np.eye(len(cands), dtype=np.float32)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        centroid = vecs.sum(axis=0)
        centrality = vecs @ (centroid / max(float(np.linalg.norm(centroid)), 1e-12))
        score = [event_weight(c[2]) * (0.5 + 0.5 * float(centrality[j])) for j, c in enumerate(cands)]
        keep = set()
        for n in sessions:
            mine = sorted((j for j, c in enumerate(cands) if c[0] == n and score[j] > 0), key=lambda j: -score[j])
            # past the first, only sentences that read as events (not "Wow, Melanie!")
            keep.update(j for k, j in enumerate(mine[:per_session]) if k == 0 or event_weight(cands[j][2]) == 1.0)
        picked = [c for j, c in enumerate(cands) if j in keep]
    return " ".join(cut_words(third_person(c[2], speaker), 30) for c in picked)


def llm_predict(reader, index, speaker: str, sessions: Sequence[int], *, max_chars: int = 3000,
                max_tokens: int = 120) -> str:
    lines, size = [], 0
    for n, i, s in _candidates(index, speaker, sessions):
        size += len(s) + 1
        if size > max_chars:
            break
        lines.append(s)
    if not lines:
        return ""
    messages = [{"role": "system", "content": LLM_PROMPT.format(s=speaker, n=2 * len(sessions))},
                {"role": "user", "content": f"Messages from {speaker}:\n" + "\n".join(lines)}]
    reply = reader.complete(messages, max_tokens)
    return " ".join(_LIST_MARK.sub("", ln).strip() for ln in str(reply).splitlines() if _LIST_MARK.sub("", ln).strip())


def score(prediction: str, gold: str) -> dict[str, float]:
    return {**rouge(prediction, gold), "f1": f1_score(prediction, gold) if prediction else 0.0}


def _means(rows: Sequence[dict], method: str) -> dict[str, Any]:
    scored = [r["scores"][method] for r in rows if method in r["scores"]]
    if not scored:
        return {"n": 0}
    return {"n": len(scored), **{k: float(np.mean([s[k] for s in scored])) for k in scored[0]},
            "mean_words": float(np.mean([len(r["predictions"][method].split()) for r in rows
                                         if method in r["predictions"]]))}


def run_events(*, data: str, out: Path, db: str, limit: int | None = None, window: int = 1, per_session: int = 2,
               reader=None, llm_limit: int | None = None, log: Callable[[str], None] = print,
               command: str | None = None) -> dict[str, Any]:
    from convmem.api import Memory
    from convmem.bench.datasets import load_locomo
    from convmem.bench.locomo import item_groups

    if window < 1 or per_session < 1:
        raise InputError("--window and --per-session must be at least 1")
    prov = provenance()
    samples = load_locomo(data, limit)
    for s in samples:
        if not isinstance(s.get("event_summary"), dict):
            raise InputError(f"{data}: LoCoMo sample {s.get('sample_id')!r} has no event_summary object")
    info = data_info(data, len(samples), limit)
    out.mkdir(parents=True, exist_ok=True)  # the input is valid: the default database lives in OUT
    mem = Memory(db, tenant=TENANT)
    imported = import_items(mem, item_groups(samples, str(data)), db_path=db, tenant=TENANT,
                            progress=lambda n, t, i: log(f"  import {n}/{t} ({i})"))
    rows, empty, seconds = [], 0, {m: 0.0 for m in (*METHODS, "llm")}
    for sample in samples:
        items, n_empty = items_of(sample, window)
        empty += n_empty
        index = mem.index(str(sample["sample_id"]))
        for item in items:
            item["predictions"], item["scores"] = {}, {}
            for method in METHODS:
                t0 = time.perf_counter()
                item["predictions"][method] = predict(index, item["speaker"], item["sessions"], method, per_session)
                seconds[method] += time.perf_counter() - t0
            if reader is not None and (llm_limit is None or sum("llm" in r["predictions"] for r in rows) < llm_limit):
                t0 = time.perf_counter()
                item["predictions"]["llm"] = llm_predict(reader, index, item["speaker"], item["sessions"])
                seconds["llm"] += time.perf_counter() - t0
                log(f"  llm {sum('llm' in r['predictions'] for r in rows) + 1}: {item['sample_id']} "
                    f"{item['speaker']} sessions {item['sessions']}")
            for method, pred in item["predictions"].items():
                item["scores"][method] = score(pred, item["gold"])
            rows.append(item)
    methods = [m for m in (*METHODS, "llm") if any(m in r["predictions"] for r in rows)]
    llm_rows = [r for r in rows if "llm" in r["predictions"]]
    results = {
        "benchmark": "locomo-events", "command": command, "data": info, "provenance": prov, "import": imported,
        "config": {"window": window, "per_session": per_session, "tenant": TENANT,
                   "reader": reader.describe() if reader is not None else None, "llm_limit": llm_limit},
        "n_items": len(rows), "n_without_gold": empty,
        "methods": {m: _means(rows, m) for m in methods},
        "same_items_as_llm": {m: _means(llm_rows, m) for m in methods} if llm_rows else None,
        "seconds": {m: seconds[m] for m in methods},
    }
    write_jsonl(out / "items.jsonl", rows)
    return results


def render_events(res: dict[str, Any]) -> str:
    cfg = res["config"]
    lines = [f"# locomo-events · window {cfg['window']} session(s), {cfg['per_session']} sentence(s) per session",
             "", "```", res.get("command") or "", "```", "",
             f"- data: `{res['data']['path']}` (sha256 `{res['data']['sha256']}`), {res['data']['n_items']} items",
             f"- {res['n_items']} (speaker, session range) items scored; {res['n_without_gold']} without any gold "
             "event (not scored)",
             f"- reader: {cfg['reader']['name'] if cfg['reader'] else 'none'}", ""]

    def table(block: dict[str, dict], title: str) -> None:
        lines.extend([f"## {title}", "", "| method | n | ROUGE-1 F1 | ROUGE-2 F1 | ROUGE-L F1 | token F1 | mean words |",
                      "|---|---|---|---|---|---|---|"])
        for m, v in block.items():
            if v.get("n"):
                lines.append(f"| {m} | {v['n']} | {v['rouge1']:.4f} | {v['rouge2']:.4f} | {v['rougeL']:.4f} | "
                             f"{v['f1']:.4f} | {v['mean_words']:.1f} |")
        lines.append("")

    table(res["methods"], "All scored items")
    if res.get("same_items_as_llm"):
        table(res["same_items_as_llm"], "The items the LLM summarised")
    lines.append("Seconds per method (all items): " + ", ".join(f"{m} {s:.1f}" for m, s in res["seconds"].items()))
    return "\n".join(lines) + "\n"
