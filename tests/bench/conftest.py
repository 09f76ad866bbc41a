from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def lme_path():
    return FIXTURES / "lme_tiny.json"


@pytest.fixture
def locomo_path():
    return FIXTURES / "locomo_tiny.json"
