"""Rounds: LongMemEval's "round" value granularity (a user turn and the assistant reply that follows, indexed as
one value), generalised to any dialogue.

A round opens at each turn of the speaker who opened the session and takes the turns that follow until that
speaker speaks again: (user, assistant) in a chat, (Caroline, Melanie) in LoCoMo's conversations. A session with
one speaker (notes; the LongMemEval protocol's user-turns-only corpus) has one round per turn. A round is one
document for BM25 (its turns joined) and one vector for the dense match (the normalised mean of its turns'
vectors); a turn's statement or fact keys are keys of its round. With `RetrievalConfig.value="round"` every turn
scores its round's score (ties inside a round broken by the turn's own), so rounds are retrieved whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from convmem.index.lexical import BM25Index

if TYPE_CHECKING:
    from convmem.index.user_index import UserIndex


def round_of(index: "UserIndex") -> np.ndarray:
    """(n,) the round of each turn, numbered from 0 in row order (rows are in session, position order)."""
    out = np.zeros(len(index.rows), dtype=np.int64)
    current, opener, session = -1, None, None
    for i, (s, sp) in enumerate(zip(index.session_index.tolist(), index.speaker_index.tolist())):
        if s != session:
            session, opener = s, sp
            current += 1
        elif sp == opener:
            current += 1
        out[i] = current
    return out


@dataclass
class RoundDocs:
    round_of: np.ndarray  # (n,) each turn's round
    lexical: BM25Index  # one document per round
    vectors: np.ndarray  # (rounds, dim), unit rows

    @classmethod
    def build(cls, index: "UserIndex") -> "RoundDocs":
        rounds = round_of(index)
        m = int(rounds.max()) + 1 if len(rounds) else 0
        docs: list[list[str]] = [[] for _ in range(m)]
        for i, row in enumerate(index.rows):
            docs[rounds[i]].append(f"{row.speaker}: {row.text}")
        vectors = np.zeros((m, index.vectors.shape[1]), dtype=np.float32)
        np.add.at(vectors, rounds, index.vectors)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return cls(round_of=rounds, lexical=BM25Index([" ".join(d) for d in docs]), vectors=vectors)

    def cosines(self, index: "UserIndex", qvec: np.ndarray) -> np.ndarray:
        """Each round's dense score: the cosine of its vector, or the best of its turns' keys where higher."""
        out = self.vectors @ qvec
        if index.key_vectors is not None and len(index.key_vectors):
            np.maximum.at(out, self.round_of[index.key_owner], (index.key_vectors @ qvec).astype(out.dtype))
        return out
