"""Haystack text: RULER's repeated noise, seeded generated prose, or a corpus the user gives.

A filler is turned into a token *stream* under a tokenizer: the text, its ids, each token's character start, and
which tokens start a word (a place where the text can be cut and re-tokenized unchanged).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from convmem.errors import InputError
from convmem.longctx.tokenizer import Tok

# RULER's "noise" haystack (from the passkey test of Mohtashami & Jaggi, 2023).
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

NAMES = (
    "Mira Lane Oskar Petra Ivan Lena Tomas Greta Nils Hana Felix Rosa Emil Clara Jonas Alma Viktor Ines Hugo Lotte"
).split()
SUBJECTS = (
    "the farmer|the old clock|a quiet river|the baker|the library|a small boat|the garden|the teacher|"
    "the market|a red kite|the village|the miller|a long road|the orchard|the lighthouse|the choir"
).split("|")
VERBS = (
    "watched|carried|painted|followed|repaired|measured|counted|visited|described|remembered|opened|crossed"
).split("|")
OBJECTS = (
    "the northern hills|a basket of apples|the morning fog|an empty chair|the winter stars|a broken fence|"
    "the harbor lights|a pile of letters|the narrow bridge|the spring rain|a wooden door|the distant bells"
).split("|")
TAILS = (
    "before noon|without a word|for a while|after the storm|as usual|near the square|in the evening|"
    "once again|with great care|at first light"
).split("|")


def generated_text(rng: random.Random, n_sentences: int) -> str:
    """Plain, varied, meaningless sentences (no numbers, so they never collide with needles)."""
    out = []
    for _ in range(n_sentences):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}."
        out.append(s[0].upper() + s[1:])
    return " ".join(out)


@dataclass
class Stream:
    text: str
    ids: np.ndarray  # int64 [n]
    starts: np.ndarray  # int64 [n] character start of each token
    boundary: np.ndarray  # bool [n] token starts a word
    sentence: np.ndarray  # bool [n] token starts a sentence or a line (a subset of `boundary`)

    def __len__(self) -> int:
        return len(self.ids)

    def piece(self, i: int, j: int) -> tuple[str, list[int]]:
        """Text and ids of tokens [i, j)."""
        if j <= i:
            return "", []
        end = int(self.starts[j]) if j < len(self) else len(self.text)
        return self.text[int(self.starts[i]) : end], self.ids[i:j].tolist()


def make_stream(tok: Tok, text: str) -> Stream:
    enc = tok.encode_offsets(text)
    starts = np.array([s for s, _ in enc.offsets], dtype=np.int64)
    # A word start: the token begins with whitespace that follows a non-space character, so a cut there leaves
    # the left piece ending in a non-space and the right piece starting with its own separator.
    boundary = np.array(
        [s < len(text) and text[s].isspace() and (s == 0 or not text[s - 1].isspace()) for s in starts], dtype=bool
    )
    sentence = boundary & np.array(
        [s < len(text) and (text[s] == "\n" or (s > 0 and text[s - 1] in ".!?,;:")) for s in starts], dtype=bool
    )
    if len(boundary):
        boundary[0] = sentence[0] = True
    return Stream(text, np.array(enc.ids, dtype=np.int64), starts, boundary, sentence)


class Filler:
    """Source of haystack text: `"noise"`, `"generated"`, or a corpus (one text or a list of texts)."""

    def __init__(self, source: str | Sequence[str] = "noise"):
        if isinstance(source, str) and source in ("noise", "generated"):
            self.kind, self.texts = source, ()
        elif isinstance(source, str):
            self.kind, self.texts = "corpus", (source,)
        else:
            texts = tuple(t for t in source if t and t.strip())
            if not texts:
                raise InputError("the filler corpus is empty: give at least one non-empty text")
            self.kind, self.texts = "corpus", texts

    def _text(self, rng: random.Random, n_chars: int) -> str:
        if self.kind == "noise":
            return " ".join([NOISE] * (n_chars // len(NOISE) + 1))
        if self.kind == "generated":
            return generated_text(rng, n_chars // 40 + 1)
        start = rng.randrange(len(self.texts))
        parts, size, i = [], 0, start
        while size < n_chars:
            t = self.texts[i % len(self.texts)].strip()
            parts.append(t)
            size += len(t) + 1
            i += 1
        return " ".join(parts)

    def stream(self, tok: Tok, n_tokens: int, rng: random.Random) -> Stream:
        """A token stream of at least `n_tokens` tokens."""
        n_chars = max(256, 5 * n_tokens)
        for _ in range(12):
            s = make_stream(tok, self._text(rng, n_chars))
            if len(s) >= n_tokens:
                return s
            n_chars *= 2
        raise InputError(f"could not make {n_tokens} filler tokens from this corpus")
