"""Token counting for context budgets, with a real tokenizer.

Default: the WordPiece tokenizer of all-MiniLM-L6-v2 (already installed for embedding, works offline). It is not
the tokenizer of your LLM; on English chat text it counts within ~10% of GPT-style BPE tokenizers (it splits
rare words more, numbers less). Any `tokenizers`-format tokenizer.json can be named with `CONVMEM_CONTEXT_TOKENIZER`.
"""

from __future__ import annotations

import os
from functools import lru_cache

from convmem.errors import require


class TokenCounter:
    def __init__(self, path: str | None = None):
        from convmem.providers.embedders import minilm_tokenizer_path

        tokenizers = require("tokenizers", "core", "token counting")
        path = path or os.environ.get("CONVMEM_CONTEXT_TOKENIZER") or str(minilm_tokenizer_path())
        self.name = "minilm-wordpiece" if path == str(minilm_tokenizer_path()) else os.path.basename(path)
        self._tok = tokenizers.Tokenizer.from_file(path)
        self._tok.no_truncation()
        self._tok.no_padding()

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def count_batch(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]


@lru_cache(maxsize=4)
def default_counter(path: str | None = None) -> TokenCounter:
    return TokenCounter(path)
