from __future__ import annotations

import json

import pytest

from convmem.longctx.runners import encode_prompt, run_local, run_openai
from convmem.longctx.tasks import get_task

httpx = pytest.importorskip("httpx")


def instances(tok, n=3):
    return [get_task("niah_single").generate(300, depth=d, seed=s, tokenizer=tok)
            for s, d in enumerate([0.0, 0.5, 1.0][:n])]


def test_openai_runner_with_mock_transport(tiny_tokenizer):
    insts = instances(tiny_tokenizer)
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append((request.url.path, request.headers.get("authorization"), body))
        user = body["messages"][0]["content"]
        inst = next(i for i in insts if i.question_prompt == user)
        answer = inst.references[0] if inst.depth != 0.5 else "no idea"
        return httpx.Response(200, json={
            "choices": [{"message": {"role": "assistant", "content": f"It is {answer}."}}],
            "usage": {"prompt_tokens": 310, "completion_tokens": 5},
        })

    client = httpx.Client(transport=httpx.MockTransport(handler))
    recs = run_openai(insts, model="m1", base_url="http://x/v1", api_key="k", client=client, show_progress=False)
    assert [r.score for r in recs] == [1.0, 0.0, 1.0]
    assert {r.method for r in recs} == {"endpoint:m1"}
    assert recs[0].prompt_tokens == 310 and recs[0].tokens_per_s > 0 and recs[0].error is None
    path, auth, body = seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["model"] == "m1" and body["temperature"] == 0.0


def test_openai_runner_records_errors(tiny_tokenizer):
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500, json={"error": "boom"})))
    recs = run_openai(instances(tiny_tokenizer, 1), model="m", base_url="http://x", client=client,
                      show_progress=False)
    assert recs[0].score == 0.0 and "HTTPStatusError" in recs[0].error


def test_completions_mode(tiny_tokenizer):
    inst = instances(tiny_tokenizer, 1)[0]

    def handler(request):
        body = json.loads(request.content)
        assert request.url.path == "/completions" and body["prompt"] == inst.prompt
        return httpx.Response(200, json={"choices": [{"text": " " + inst.references[0]}]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    recs = run_openai([inst], model="m", base_url="http://x", client=client, chat=False, show_progress=False)
    assert recs[0].score == 1.0


def test_local_runner(tiny_model, tiny_hf_tokenizer, tiny_tokenizer):
    insts = instances(tiny_tokenizer, 2)
    ids = encode_prompt(insts[0], tiny_hf_tokenizer, chat=True)
    assert len(ids) > insts[0].n_tokens  # the chat template adds a few tokens
    assert encode_prompt(insts[0], tiny_hf_tokenizer, chat=False) == tiny_tokenizer.encode(
        insts[0].prompt, add_special_tokens=False).ids
    recs = run_local(insts, tiny_model, tiny_hf_tokenizer, "streaming", max_new_tokens=4, chunk_size=64,
                     show_progress=False)
    assert len(recs) == 2
    r = recs[0]
    assert r.method == "streaming" and 0.0 <= r.score <= 1.0 and r.kv_peak_mb > 0 and r.rss_peak_mb > 0
    assert r.cache_max <= 2048 and r.extra["policy"]["name"] == "streaming"
