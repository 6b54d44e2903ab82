"""Fixtures shared by the test folders that start real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.tiny_model import build_forcing_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random s1-format model, built once per session and read by every server started on it."""
    return build_forcing_model(tmp_path_factory.mktemp("models") / "tiny-s1", trigger_scale=25.0)
