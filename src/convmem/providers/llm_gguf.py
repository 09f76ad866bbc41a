"""Load a llama-architecture GGUF file (SmolLM2, Llama, Mistral-style) into a transformers model, fast.

transformers can load GGUF files itself (`from_pretrained(..., gguf_file=...)`), but on two CPU cores it takes
~40 s for SmolLM2-135M (it parses the 49k-token vocabulary several times). This reads the file once: metadata
with `struct`, tensors through a memory map, quantized blocks dequantized by the `gguf` package, and llama.cpp's
rotary permutation of the q/k weights undone, as transformers does. Other architectures fall back to
transformers' own loader (`load_gguf` handles that).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from convmem.errors import ConfigError, require

# fixed-size metadata value types; 8 is a string and 9 an array
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
LLAMA_LIKE = {"llama", "mistral"}


def _string(blob: np.ndarray, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", blob, pos)
    pos += 8
    return bytes(blob[pos:pos + length]).decode("utf-8", "replace"), pos + length


def _value(blob: np.ndarray, pos: int, kind: int) -> tuple[Any, int]:
    if kind in _SCALAR:
        fmt = _SCALAR[kind]
        return struct.unpack_from(fmt, blob, pos)[0], pos + struct.calcsize(fmt)
    if kind == 8:
        return _string(blob, pos)
    if kind == 9:
        element, count = struct.unpack_from("<IQ", blob, pos)
        pos += 12
        if element in _SCALAR:
            size = struct.calcsize(_SCALAR[element])
            return f"<array of {count}>", pos + size * count
        for _ in range(count):  # strings (a vocabulary): skipped, the tokenizer reads them itself
            if element == 8:
                (length,) = struct.unpack_from("<Q", blob, pos)
                pos += 8 + length
            else:
                _, pos = _value(blob, pos, element)
        return f"<array of {count}>", pos
    raise ConfigError(f"GGUF metadata value of unknown type {kind}")


def read_gguf(path: str) -> tuple[dict[str, Any], dict[str, tuple[tuple[int, ...], int, np.ndarray]]]:
    """(metadata without arrays, {tensor name: (shape in torch order, ggml type, raw bytes as a memmap view)})."""
    blob = np.memmap(path, mode="r", dtype=np.uint8)
    if bytes(blob[:4]) != b"GGUF":
        raise ConfigError(f"{path} is not a GGUF file")
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", blob, 4)
    if version not in (2, 3):
        raise ConfigError(f"{path} is GGUF version {version}; versions 2 and 3 are supported")
    pos, meta = 24, {}
    for _ in range(n_kv):
        key, pos = _string(blob, pos)
        (kind,) = struct.unpack_from("<I", blob, pos)
        meta[key], pos = _value(blob, pos + 4, kind)
    infos = []
    for _ in range(n_tensors):
        name, pos = _string(blob, pos)
        (ndim,) = struct.unpack_from("<I", blob, pos)
        dims = struct.unpack_from(f"<{ndim}Q", blob, pos + 4)
        ggml_type, offset = struct.unpack_from("<IQ", blob, pos + 4 + 8 * ndim)
        pos += 4 + 8 * ndim + 12
        infos.append((name, tuple(reversed(dims)), ggml_type, offset))
    align = int(meta.get("general.alignment", 32))
    start = (pos + align - 1) // align * align
    gguf = require("gguf", "llm", "reading GGUF models")
    tensors = {}
    for name, shape, ggml_type, offset in infos:
        qtype = gguf.GGMLQuantizationType(ggml_type)
        block, type_bytes = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = int(np.prod(shape)) // block * type_bytes
        tensors[name] = (shape, ggml_type, blob[start + offset:start + offset + nbytes])
    return meta, tensors


def _blocks_q4_0(blocks: np.ndarray) -> np.ndarray:
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return d * q


def _blocks_q4_1(blocks: np.ndarray) -> np.ndarray:
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 4:]
    return d * np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) + m


def _blocks_q8_0(blocks: np.ndarray) -> np.ndarray:
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    return d * blocks[:, 2:].copy().view(np.int8).astype(np.float32)


# the common small-model block formats, vectorised over the whole tensor (the gguf package's generic path is
# several times slower); anything else goes through gguf.quants.dequantize
_FAST = {2: (18, _blocks_q4_0), 3: (20, _blocks_q4_1), 8: (34, _blocks_q8_0)}


def _dequantize(shape: tuple[int, ...], ggml_type: int, raw: np.ndarray) -> np.ndarray:
    import gguf

    qtype = gguf.GGMLQuantizationType(ggml_type)
    if qtype == gguf.GGMLQuantizationType.F32:
        return np.frombuffer(raw, dtype=np.float32).reshape(shape)
    if qtype == gguf.GGMLQuantizationType.F16:
        return np.frombuffer(raw, dtype=np.float16).reshape(shape).astype(np.float32)
    if qtype == gguf.GGMLQuantizationType.BF16:
        return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if ggml_type in _FAST:
        size, fn = _FAST[ggml_type]
        return fn(np.asarray(raw).reshape(-1, size)).reshape(shape)
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    return gguf.quants.dequantize(np.asarray(raw).reshape(rows, -1), qtype).reshape(shape).astype(np.float32)


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's rotary permutation of a q/k projection (as transformers' reverse_permute_weights)."""
    dim = w.shape[0] // heads // 2
    return w.reshape(heads, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


_RENAME = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
           "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
           "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def _rope(config_class: Any, theta: float) -> dict[str, Any]:
    """The rotary base as this transformers version spells it (5.x: rope_parameters; 4.x: rope_theta)."""
    import inspect

    if "rope_parameters" in inspect.signature(config_class.__init__).parameters:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}
    return {"rope_theta": theta}


def load_llama_gguf(path: str, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a llama-architecture GGUF file."""
    torch = require("torch", "llm", "running a local chat model")
    transformers = require("transformers", "llm", "running a local chat model")
    meta, tensors = read_gguf(path)
    arch = meta.get("general.architecture")
    if arch not in LLAMA_LIKE:
        raise ConfigError(f"{path}: architecture {arch!r} is not llama-like")
    p = f"{arch}."
    heads = int(meta[p + "attention.head_count"])
    kv_heads = int(meta.get(p + "attention.head_count_kv", heads))
    hidden = int(meta[p + "embedding_length"])
    vocab = tensors["token_embd.weight"][0][0]
    tokenizer = _tokenizer(path)
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=int(meta[p + "feed_forward_length"]),
        num_hidden_layers=int(meta[p + "block_count"]), num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=int(meta.get(p + "context_length", 2048)),
        rms_norm_eps=float(meta.get(p + "attention.layer_norm_rms_epsilon", 1e-5)),
        **_rope(transformers.LlamaConfig, float(meta.get(p + "rope.freq_base", 10000.0))),
        head_dim=int(meta.get(p + "rope.dimension_count", hidden // heads)),
        tie_word_embeddings="output.weight" not in tensors,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    state = {}
    for name, (shape, ggml_type, raw) in tensors.items():
        w = _dequantize(shape, ggml_type, raw)
        if name == "token_embd.weight":
            key = "model.embed_tokens.weight"
        elif name == "output.weight":
            key = "lm_head.weight"
        elif name == "output_norm.weight":
            key = "model.norm.weight"
        elif name.startswith("blk."):
            _, layer, leaf, kind = name.split(".")
            if leaf == "attn_q":
                w = _unpermute(w, heads)
            elif leaf == "attn_k":
                w = _unpermute(w, kv_heads)
            if leaf not in _RENAME:
                continue  # e.g. rope_freqs: computed by transformers
            key = f"model.layers.{layer}.{_RENAME[leaf]}.{kind}"
        else:
            continue
        state[key] = torch.from_numpy(np.array(w, dtype=np.float32))  # a writable copy, off the memory map
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config)
    model.load_state_dict(state, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    # buffers computed from the config (rotary frequencies) were made on the meta device: make them for real
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
    missing = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if missing:
        raise ConfigError(f"{path}: the GGUF file lacks {missing[:3]}")
    model = model.to(dtype or torch.float32)
    model.eval()
    return model, tokenizer


def _tokenizer(path: str) -> Any:
    """The file's tokenizer, built by transformers' GGUF converter (public fallback: AutoTokenizer)."""
    import os

    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        from transformers.integrations.gguf import convert_gguf_tokenizer, get_gguf_tokenizer

        arch, tokenizer_dict, config = get_gguf_tokenizer(path)
        backend, extra = convert_gguf_tokenizer(arch, tokenizer_dict)
        return PreTrainedTokenizerFast(tokenizer_object=backend, **{**config, **extra})
    except ImportError:
        return AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
