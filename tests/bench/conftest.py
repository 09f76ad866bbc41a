from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def lme_path():
    return FIXTURES / "lme_tiny.json"


@pytest.fixture
def locomo_path():
    return FIXTURES / "locomo_tiny.json"


@pytest.fixture(scope="module")
def shared_embedder(embedder):
    """Every Memory the CLI opens reuses one loaded MiniLM (the real model; loading it once saves seconds).
    Use with `pytestmark = pytest.mark.usefixtures("shared_embedder")`."""
    import convmem.api

    real = convmem.api.load_embedder
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(convmem.api, "load_embedder", lambda spec=None: embedder if spec is None else real(spec))
        yield
