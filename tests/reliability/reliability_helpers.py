"""Shared by the reliability tests: a cheap deterministic embedder (the dense path runs without a model)."""

from __future__ import annotations

import hashlib

import numpy as np

from convmem.providers.embedders import Embedder


class HashEmbedder(Embedder):
    """Bag of hashed words, unit length: texts sharing words are near. Deterministic, no model, microseconds."""

    name, dim = "hash-16", 16

    def embed_batch(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=1).digest()[0] % 16] += 1
        out[:, 0] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)

