"""Contract of every KV policy on a tiny random Llama: bounded cache in prefill and decode, right shapes, and
`full` (and every policy given room for everything) equal to transformers' greedy generate."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from convmem.longctx.kv import POLICIES, KVSession, generate, get_policy  # noqa: E402
from convmem.longctx.kv.base import rotate  # noqa: E402
from convmem.longctx.kv.session import attention_of  # noqa: E402

# every policy with a budget far below the prompt length (40 tokens + 8 generated)
SMALL = {
    "full": {},
    "streaming": {"n_sink": 2, "window": 10},
    "lm-infinite": {"n_global": 2, "window": 10},
    "h2o": {"heavy": 6, "recent": 6},
    "sirllm": {"n_sink": 2, "n_key": 4, "window": 6},
}
# the same policies with room for everything
ROOMY = {
    "full": {},
    "streaming": {"window": 500},
    "lm-infinite": {"window": 500},
    "h2o": {"heavy": 250, "recent": 250},
    "sirllm": {"n_key": 250, "window": 250},
}


def test_every_policy_is_listed():
    assert set(POLICIES) == set(SMALL) == set(ROOMY)


def prompt(n=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 256, (1, n), generator=g)


@pytest.fixture(scope="module")
def reference(tiny_model):
    ids = prompt()
    with torch.inference_mode():
        out = tiny_model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_cache_stays_within_budget(name, tiny_model):
    policy = get_policy(name, **SMALL[name])
    chunk = 8
    gen = generate(tiny_model, prompt(), policy, max_new_tokens=8, chunk_size=chunk)
    assert len(gen.tokens) == 8
    budget = policy.budget()
    if budget is None:
        assert gen.stats.max_cache_after == 40 + 7
        return
    assert gen.stats.max_cache_after <= budget
    assert gen.stats.max_cache_during <= budget + chunk
    assert max(gen.stats.history) <= budget
    assert gen.stats.history[-1] == budget  # full after a long prompt, and stays there while decoding


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_roomy_policy_equals_hf_generate(name, tiny_model, reference):
    gen = generate(tiny_model, prompt(), get_policy(name, **ROOMY[name]), max_new_tokens=8, chunk_size=16)
    assert gen.tokens == reference


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_logits_shape_and_model_restored(name, tiny_model):
    before = tiny_model.config._attn_implementation
    session = KVSession(tiny_model, get_policy(name, **SMALL[name]))
    with torch.inference_mode(), attention_of(tiny_model):
        logits = session.forward(prompt(20))
        assert logits.shape == (1, 1, 512)
        logits = session.forward(prompt(20, seed=2), all_logits=True)
        assert logits.shape == (1, 20, 512)
    assert tiny_model.config._attn_implementation == before
    with torch.inference_mode():  # the model still works on its own afterwards
        assert tiny_model(prompt(5)).logits.shape == (1, 5, 512)


def test_full_logits_match_plain_forward(tiny_model):
    ids = prompt(40)
    with torch.inference_mode():
        plain = tiny_model(ids).logits[0, -1]
        session = KVSession(tiny_model, get_policy("full"))
        with attention_of(tiny_model):
            for s in range(0, 40, 7):
                logits = session.forward(ids[:, s : s + 7])
    assert torch.allclose(logits[0, -1], plain, atol=1e-4)


def test_lm_infinite_chunking_does_not_change_attention(tiny_model):
    """LM-Infinite's mask and distance cap are per query, so chunked prefill equals token-by-token."""
    ids = prompt(32)
    outs = []
    for chunk in (1, 9):
        session = KVSession(tiny_model, get_policy("lm-infinite", n_global=3, window=8, max_distance=12))
        with torch.inference_mode(), attention_of(tiny_model):
            for s in range(0, 32, chunk):
                logits = session.forward(ids[:, s : s + chunk])
        outs.append(logits[0, -1])
    assert torch.allclose(outs[0], outs[1], atol=1e-4)


def test_streaming_positions_are_cache_indices(tiny_model):
    session = KVSession(tiny_model, get_policy("streaming", n_sink=2, window=10))
    with torch.inference_mode(), attention_of(tiny_model):
        session.forward(prompt(30))
        layer = session.layers[0]
        assert layer.pos[0].tolist() == list(range(12))
        assert layer.tok[0].tolist() == [0, 1] + list(range(20, 30))
        assert session.next_positions(1).tolist() == [12]


def test_rotate_moves_rope_positions():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    d, inv = 16, 1.0 / (10000 ** (torch.arange(0, 16, 2, dtype=torch.float) / 16))
    x = torch.randn(1, 2, 5, d)

    def rope(x, pos):
        freqs = pos[:, None].float() * inv
        emb = torch.cat((freqs, freqs), -1)
        return apply_rotary_pos_emb(x, x, emb.cos()[None], emb.sin()[None])[0]

    at_100 = rope(x, torch.arange(100, 105))
    moved = rotate(at_100, torch.full((1, 2, 5), -97), inv)
    assert torch.allclose(moved, rope(x, torch.arange(3, 8)), atol=1e-4)


def test_bad_input(tiny_model):
    from convmem.errors import ConfigError, InputError

    with pytest.raises(InputError):
        generate(tiny_model, torch.zeros(2, 5, dtype=torch.long), get_policy("full"))
    with pytest.raises(ConfigError):
        generate(tiny_model, prompt(5), get_policy("streaming", window=0))
