"""Indexes over one user's turns: lexical (BM25) and dense (embeddings), built from the store and cached.

Why per user, in memory: every search is scoped to one (tenant, user) — the isolation boundary — and one user's
memory is thousands of turns, not millions. A BM25 matrix and an embedding matrix for a few thousand turns are
built in milliseconds, kept in an LRU cache keyed by the user's revision, and answer in well under 1 ms, with no
cross-user filtering step at all (a global FTS5 OR-query over 200k rows takes 30-130 ms here). docs/design.md
gives the measurements.
"""
