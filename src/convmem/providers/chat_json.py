"""Structured output from chat models that survives the malformed JSON small models write.

`parse_json_output(text)`:
1. the text as JSON, if it is;
2. else the inside of a ```json code fence, if any;
3. the first balanced {...} or [...] in it (prose before and after is ignored);
4. repairs that do not guess at content: trailing commas, 'single-quoted' strings, unquoted keys,
   Python's True/False/None, // and /* */ comments, raw newlines inside strings;
5. else `JSONOutputError` with the reason, so the caller can ask again (`convmem.providers.chat.complete_json`).

Output cut off by the token limit is never closed up and passed off as complete: it raises (reason: truncated).
"""

from __future__ import annotations

import json
import re
from typing import Any

from convmem.errors import ConvmemError

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\n?(.*?)(?:```|$)", re.S)
_CLOSE = {"{": "}", "[": "]"}


class JSONOutputError(ConvmemError, ValueError):
    """A model's output holds no JSON that can be read or repaired."""

    code = "invalid_model_output"

    def __init__(self, reason: str, text: str):
        self.reason, self.text = reason, text
        preview = text.strip().replace("\n", " ")[:120]
        super().__init__(f"model output is not JSON ({reason}): {preview!r}")


def parse_json_output(text: str) -> Any:
    """The JSON value in a model's output (see the module docstring); raises `JSONOutputError`."""
    if not isinstance(text, str):
        raise JSONOutputError(f"expected text, got {type(text).__name__}", repr(text))
    stripped = text.strip()
    if not stripped:
        raise JSONOutputError("empty output", text)
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    fenced = _FENCE.search(stripped)
    body = fenced.group(1) if fenced else stripped
    candidate = _first_balanced(body)
    if candidate is None:
        raise JSONOutputError("no JSON object or array in it", text)
    if candidate == "":
        raise JSONOutputError("truncated: an object or array is never closed", text)
    for attempt in (candidate, _repair(candidate)):
        try:
            return json.loads(attempt)
        except json.JSONDecodeError as exc:
            error = exc
    raise JSONOutputError(f"{error.msg} at character {error.pos} even after repair", text)


def _first_balanced(text: str) -> str | None:
    """The first balanced {...}/[...] (quote-aware); '' if one opens but never closes; None if none opens."""
    start = next((i for i, c in enumerate(text) if c in _CLOSE), None)
    if start is None:
        return None
    stack: list[str] = []
    quote = ""
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'":
            # an apostrophe inside a word (don't, it's) is not a quote
            if c == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < len(text) and text[i + 1].isalnum():
                pass
            else:
                quote = c
        elif c in _CLOSE:
            stack.append(_CLOSE[c])
        elif c in "}]":
            if not stack or stack[-1] != c:
                return text[start:i + 1]  # mismatched: let json.loads say where
            stack.pop()
            if not stack:
                return text[start:i + 1]
        i += 1
    return ""


_WORDS = {"True": "true", "False": "false", "None": "null", "true": "true", "false": "false", "null": "null"}


def _repair(text: str) -> str:
    """Rewrite the common small-model mistakes, token by token, without touching string contents."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j, chars = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    nxt = text[j + 1]
                    code = _unicode(text, j) if nxt == "u" else None
                    if code is not None:
                        chars.append(code)
                        j += 6
                        continue
                    chars.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(nxt, nxt))
                    j += 2
                    continue
                chars.append(text[j])
                j += 1
            out.append(json.dumps("".join(chars), ensure_ascii=False))
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == ",":
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            if j < n and text[j] in "}]":
                i += 1  # trailing comma
                continue
            out.append(c)
            i += 1
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] in "_-"):
                j += 1
            word = text[i:j]
            k = j
            while k < n and text[k].isspace():
                k += 1
            if k < n and text[k] == ":":
                out.append(json.dumps(word))  # unquoted key
            else:
                out.append(_WORDS.get(word, word))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _unicode(text: str, j: int) -> str | None:
    digits = text[j + 2:j + 6]
    if len(digits) == 4 and all(d in "0123456789abcdefABCDEF" for d in digits):
        return chr(int(digits, 16))
    return None
