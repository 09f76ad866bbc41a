"""Fixtures for the reliability tests."""

from __future__ import annotations

import pytest

from reliability_helpers import HashEmbedder


@pytest.fixture
def hash_embedder():
    return HashEmbedder()
