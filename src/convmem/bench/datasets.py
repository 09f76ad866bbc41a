"""Benchmark files (LongMemEval, LoCoMo): loading, downloading and the official id and gold rules.

LongMemEval rules follow the authors' retrieval code (`src/retrieval/run_retrieval.py` of xiaowu0162/LongMemEval,
function `process_item_flat_index`, and `eval_utils.py`); LoCoMo rules follow `task_eval/evaluation.py` of
snap-research/LoCoMo and the data's own format. Every function here is pure: no ranking, no scoring.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

from convmem.errors import FormatError, InputError
from convmem.ingest.longmemeval import parse_date

LONGMEMEVAL_HUB = "https://huggingface.co/datasets/xiaowu0162/longmemeval-cleaned/resolve/main/"
OFFICIAL_URLS = {
    "locomo": "https://raw.githubusercontent.com/snap-research/LoCoMo/main/data/locomo10.json",
    "longmemeval_s": LONGMEMEVAL_HUB + "longmemeval_s_cleaned.json",
    "longmemeval_m": LONGMEMEVAL_HUB + "longmemeval_m_cleaned.json",
    "longmemeval_oracle": LONGMEMEVAL_HUB + "longmemeval_oracle.json",
}
GRANULARITIES = ("session", "turn")


# --------------------------------------------------------------------------------------------- files


def load_json(path: str | os.PathLike) -> Any:
    """Read a `.json` or `.json.gz` file (gzip is read directly, without unpacking to disk)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such data file; pass --data PATH with a local copy of the benchmark file")
    opener = gzip.open if p.name.endswith(".gz") else open
    try:
        with opener(p, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise FormatError(
            f"not valid JSON{' (gzip)' if opener is gzip.open else ''}: {exc}; pass --data PATH with a valid copy",
            source=str(p),
        ) from exc


def _load_list(path, required: tuple[str, ...], what: str, limit: int | None) -> list[dict]:
    data = load_json(path)
    if not isinstance(data, list):
        raise FormatError(f"expected a JSON list of {what} items, got {type(data).__name__}", source=str(path))
    for i, item in enumerate(data):
        missing = [k for k in required if not isinstance(item, dict) or k not in item]
        if missing:
            raise FormatError(f"not a {what} item: missing {', '.join(missing)}", source=str(path), item=i)
    return data if limit is None else data[:limit]


def load_longmemeval(path, limit: int | None = None) -> list[dict]:
    """LongMemEval items (s, m or oracle), the first `limit` in file order."""
    req = ("question_id", "question_type", "question", "haystack_session_ids", "haystack_sessions")
    return _load_list(path, req, "LongMemEval", limit)


def load_locomo(path, limit: int | None = None) -> list[dict]:
    """LoCoMo samples (conversations), the first `limit` in file order."""
    return _load_list(path, ("sample_id", "conversation", "qa"), "LoCoMo", limit)


def download_official(name: str, dest: str | os.PathLike, *, url: str | None = None, timeout: float = 60) -> Path:
    """Download an official benchmark file (`OFFICIAL_URLS[name]`, or `url`) to `dest` (a file or a folder).

    The file is written under a temporary name and renamed when complete. Network failures raise
    `InputError` saying to pass `--data PATH` instead.
    """
    if url is None:
        if name not in OFFICIAL_URLS:
            raise InputError(f"unknown benchmark file {name!r}; known: {', '.join(sorted(OFFICIAL_URLS))}")
        url = OFFICIAL_URLS[name]
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / url.rstrip("/").rsplit("/", 1)[-1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise InputError(f"could not download {url} ({exc}); offline? pass --data PATH with a local copy") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


# --------------------------------------------------------------------------------------------- LongMemEval


def lme_is_abstention(item: Mapping) -> bool:
    """Official rule: a question is an abstention question when `_abs` occurs in its question_id."""
    return "_abs" in str(item["question_id"])


def lme_question_time(item: Mapping) -> datetime | None:
    """The question's date (`question_date`, UTC as the importer reads session dates); None when absent or bad.

    Retrieval resolves relative expressions ("two weeks ago", "last Saturday") against it, as a live assistant
    would resolve them against the day the user asks.
    """
    raw = item.get("question_date")
    if not isinstance(raw, str):
        return None
    try:
        return parse_date(raw, source="question_date", item=item.get("question_id"))
    except FormatError:
        return None


def _sessions(item: Mapping) -> list[tuple[str, list]]:
    ids, sessions = item["haystack_session_ids"], item["haystack_sessions"]
    if len(ids) != len(sessions):
        raise FormatError(
            f"{len(ids)} haystack_session_ids but {len(sessions)} haystack_sessions", item=item.get("question_id")
        )
    return list(zip(ids, sessions))


def lme_corpus(item: Mapping, granularity: str) -> list[tuple[str, str]]:
    """The official retrieval corpus of one question: (doc_id, text) in haystack order.

    Official rule (`process_item_flat_index`):
    - 'session': one document per session, its user turns' contents joined by a single space. A session whose
      id contains 'answer' but has no user turn with has_answer is renamed, 'answer' -> 'noans'.
    - 'turn': one document per user turn, id `<session_id>_<i+1>`, i the turn's index in the session over ALL
      turns (assistant turns included). In a session whose id contains 'answer', the id of a user turn without
      has_answer is renamed 'answer' -> 'noans'.
    The renaming makes "'answer' in doc_id" the gold test (see `lme_gold`). has_answer is read for its truth
    value, a missing one counts as false (the official code asserts it is present).
    """
    if granularity not in GRANULARITIES:
        raise InputError(f"granularity must be 'session' or 'turn', not {granularity!r}")
    docs: list[tuple[str, str]] = []
    for sid, session in _sessions(item):
        sid = str(sid)
        users = [(i, t) for i, t in enumerate(session) if t.get("role") == "user"]
        if granularity == "session":
            doc_id = sid
            if "answer" in sid and not any(t.get("has_answer") for _, t in users):
                doc_id = sid.replace("answer", "noans")
            docs.append((doc_id, " ".join(t["content"] for _, t in users)))
        else:
            for i, turn in users:
                doc_id = f"{sid}_{i + 1}"
                if "answer" in sid and not turn.get("has_answer"):
                    doc_id = doc_id.replace("answer", "noans")
                docs.append((doc_id, turn["content"]))
    return docs


def lme_gold(item: Mapping, granularity: str) -> set[str]:
    """Official gold: the corpus ids that contain 'answer' after the renaming of `lme_corpus`.

    So at session level: sessions whose id contains 'answer' with at least one user turn having has_answer;
    at turn level: the user turns with has_answer in those sessions. Evidence that sits only in assistant turns
    has no gold under this protocol (such questions score recall_all = 1.0 and recall_any = ndcg = 0).
    """
    return {doc_id for doc_id, _ in lme_corpus(item, granularity) if "answer" in doc_id}


def lme_session_of(doc_id: str) -> str:
    """Official turn -> session mapping (`strip_turn_id`): drop the last `_<n>` part of the id.

    Renamed turns map to renamed sessions: 'noans_x_3' -> 'noans_x', a different session from 'answer_x'.
    """
    return "_".join(str(doc_id).split("_")[:-1])


def lme_update_sessions(item: Mapping) -> list[str]:
    """Our extension, for knowledge-update questions: the official gold sessions from oldest to latest (by
    `haystack_dates`), when there are at least two on different dates; else []. The latest one holds the
    current state the question asks about."""
    if item.get("question_type") != "knowledge-update" or lme_is_abstention(item):
        return []
    gold = lme_gold(item, "session")
    dated = sorted((str(date), str(sid)) for sid, date in zip(item["haystack_session_ids"], item["haystack_dates"])
                   if str(sid) in gold)
    return [sid for _, sid in dated] if len({d for d, _ in dated}) > 1 else []


def lme_all_turn_evidence(item: Mapping) -> set[str]:
    """Our extension: ids `<session_id>_<i+1>` of ALL turns (user and assistant) with has_answer true.

    Ids use the raw session id; for user turns they equal the official turn ids (those are never renamed).
    """
    return {
        f"{sid}_{i + 1}"
        for sid, session in _sessions(item)
        for i, turn in enumerate(session)
        if turn.get("has_answer")
    }


# --------------------------------------------------------------------------------------------- LoCoMo

LOCOMO_CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
_DIA_ID = re.compile(r"D\d+:\d+")
_EVIDENCE_SPLIT = re.compile(r"[;,\s]+")


@dataclass
class LocomoQuestion:
    """One LoCoMo QA item with its evidence checked against the conversation."""

    qid: str  # `<sample_id>:<index in qa>`
    question: str
    answer: str  # `answer` as str (ints converted, as the official code does); cat 5 without it: adversarial_answer
    category: int
    category_name: str
    evidence: list[str] = field(default_factory=list)  # valid dia_ids present in the conversation, in order
    invalid_evidence: list[str] = field(default_factory=list)  # the dropped parts
    raw_evidence: list[str] = field(default_factory=list)  # as in the file

    @property
    def has_valid_evidence(self) -> bool:
        return bool(self.evidence)


def locomo_sessions(sample: Mapping) -> list[tuple[int, str, list[dict]]]:
    """(session number, date_time string, turns) of a conversation, in session-number order."""
    conv = sample["conversation"]
    out = []
    for key, turns in conv.items():
        m = re.fullmatch(r"session_(\d+)", key)
        if m and isinstance(turns, list):
            out.append((int(m.group(1)), str(conv.get(f"{key}_date_time", "")), turns))
    return sorted(out, key=lambda s: s[0])


def locomo_dia_ids(sample: Mapping) -> set[str]:
    return {str(t["dia_id"]) for _, _, turns in locomo_sessions(sample) for t in turns if "dia_id" in t}


def parse_evidence(raw: list, dia_ids: set[str]) -> tuple[list[str], list[str]]:
    """Founder's rule for LoCoMo evidence: split every string on ';', ',' and whitespace; keep the parts that
    match `D<n>:<n>` exactly AND exist in the conversation (no repair: 'D30:05' or 'D:11:26' are dropped).
    Returns (valid ids without duplicates, dropped parts). An item has 'no valid evidence' only when none remain.
    """
    valid: list[str] = []
    dropped: list[str] = []
    for entry in raw or []:
        parts = [p for p in _EVIDENCE_SPLIT.split(str(entry)) if p]
        if not parts:
            dropped.append(str(entry))
        for part in parts:
            if _DIA_ID.fullmatch(part) and part in dia_ids:
                if part not in valid:
                    valid.append(part)
            else:
                dropped.append(part)
    return valid, dropped


def locomo_questions(sample: Mapping) -> Iterator[LocomoQuestion]:
    """The QA items of one LoCoMo sample, in file order, with official category names."""
    sample_id = str(sample["sample_id"])
    dia_ids = locomo_dia_ids(sample)
    for index, qa in enumerate(sample["qa"]):
        try:
            category = int(qa["category"])
        except (KeyError, TypeError, ValueError):
            category = None
        if category not in LOCOMO_CATEGORIES:
            raise FormatError(f"category must be 1..5, got {qa.get('category')!r}", item=f"{sample_id}:{index}")
        if "answer" in qa:
            answer = str(qa["answer"])
        else:
            answer = str(qa.get("adversarial_answer", ""))
        raw = [str(e) for e in (qa.get("evidence") or [])]
        valid, dropped = parse_evidence(raw, dia_ids)
        yield LocomoQuestion(
            qid=f"{sample_id}:{index}",
            question=str(qa.get("question", "")),
            answer=answer,
            category=category,
            category_name=LOCOMO_CATEGORIES[category],
            evidence=valid,
            invalid_evidence=dropped,
            raw_evidence=raw,
        )
