"""Benchmark harness: LongMemEval and LoCoMo, scored exactly as their authors score them.

`datasets` loads the files and applies each benchmark's official id and gold rules, `metrics` holds the
official retrieval metrics, `flat_bm25` the paper's BM25 baseline and `locomo_score` the official LoCoMo QA F1.
"""
