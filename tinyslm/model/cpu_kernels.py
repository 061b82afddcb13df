"""Fused causal attention on the CPU: a C++ kernel compiled on first use, called through JAX's FFI.

XLA:CPU runs attention as separate ops over whole score tensors: batched products, a mask, a
softmax, more products, each reading and writing (B, H, T, T) floats, and the same again
backwards. ``flash_attention_cpu.cc`` does what PyTorch's CPU attention kernel and
FlashAttention do instead: it walks 64 x 64 tiles of queries and keys and keeps every tile's
scores in cache (Dao et al. 2022, arXiv:2205.14135; Dao 2023, arXiv:2307.08691).

The first call compiles the C++ file with the system's compiler (``$CXX``, else ``g++``, else
``clang++``; a few seconds) into ``~/.cache/tinyslm/kernels`` (``$TINYSLM_CACHE_DIR`` moves it),
keyed by a hash of the source, the flags, the jaxlib version and the CPU's features (the
library is built for this CPU with ``-march=native``), and registers it with
``jax.ffi``. Later processes load the cached library. When no compiler is found or the build
fails, :func:`available` says False once, with a warning that says why, and attention falls back
to the pure-JAX path: slower, same numbers. ``TINYSLM_CPU_KERNELS=0`` turns the kernel off.

It is used for float32 causal attention without a KV cache on the CPU backend (training,
evaluation, scoring), where head_dim is a multiple of 16.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib

from tinyslm import cache_root

SOURCE = Path(__file__).with_name("flash_attention_cpu.cc")
FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-std=c++17", "-shared", "-fPIC", "-pthread"]
THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_features() -> str:
    """What ``-march=native`` compiles for: the CPU's feature flags (Linux), else its name."""
    try:
        return next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith(("flags", "Features")))
    except (OSError, StopIteration):
        return platform.machine() + platform.processor()


def _build(compiler: str, source: Path) -> Path:
    """Compile ``source`` into the cache, once per source, flags, jaxlib and CPU; return the library's path."""
    recipe = " ".join([compiler, *FLAGS, jaxlib.__version__, _cpu_features()])
    key = hashlib.sha256(source.read_bytes() + recipe.encode()).hexdigest()[:16]
    cache = cache_root() / "kernels"
    library = cache / f"flash_attention_cpu-{key}.so"
    if not library.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:  # build aside, then rename: safe with parallel builds
            built = Path(tmp) / library.name
            command = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(source), "-o", str(built)]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
            os.replace(built, library)
    return library


def load_kernel(source: Path, prefix: str) -> None:
    """Compile ``source`` (cached) and register it as FFI targets ``{prefix}_forward`` / ``_backward``.

    :func:`attention_op` (``prefix``) then calls them. tinyslm loads :data:`SOURCE` as
    ``tinyslm_flash`` (behind :func:`flash_attention`); ``benchmarks/kernel_ab.py`` loads a second
    version of the file under another prefix to time the two side by side in one process. Raises
    ``RuntimeError`` when there is no compiler or the build fails, ``OSError`` when the library
    does not load.
    """
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set $CXX)")
    library = ctypes.cdll.LoadLibrary(str(_build(compiler, source)))
    for name, symbol in ((f"{prefix}_forward", "TinyslmFlashForward"), (f"{prefix}_backward", "TinyslmFlashBackward")):
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")


@functools.cache
def _load() -> bool:
    try:
        load_kernel(SOURCE, "tinyslm_flash")
    except (OSError, RuntimeError) as error:
        warnings.warn(f"tinyslm: the fused CPU attention kernel is not available; CPU attention uses the slower pure-JAX path. {error}")
        return False
    return True


def available(q: jax.Array, k: jax.Array) -> bool:
    """Whether :func:`flash_attention` can take this call: CPU backend, float32, head_dim % 16 == 0, kernel built."""
    return (
        os.environ.get("TINYSLM_CPU_KERNELS", "1") != "0"
        and jax.default_backend() == "cpu"
        and q.dtype == k.dtype == jnp.float32
        and q.shape[-1] % 16 == 0
        and q.shape[2] % k.shape[2] == 0
        and _load()
    )


def attention_op(prefix: str):
    """Causal attention with a custom gradient over the FFI targets ``{prefix}_forward`` / ``_backward``.

    :func:`load_kernel` registers the targets; tinyslm's own op is :func:`flash_attention`.
    """

    def forward_call(q, k, v):
        B, T, H, _ = q.shape
        out = (jax.ShapeDtypeStruct(q.shape, jnp.float32), jax.ShapeDtypeStruct((B, H, T), jnp.float32))
        return jax.ffi.ffi_call(f"{prefix}_forward", out, vmap_method="sequential")(q, k, v, threads=THREADS)

    @jax.custom_vjp
    def attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
        """Causal softmax attention, fused: q (B, T, H, D), k, v (B, T, Hkv, D) -> (B, T, H, D).

        Query t sees keys 0..t; query head h uses key/value head h // (H // Hkv).
        """
        return forward_call(q, k, v)[0]

    def forward(q, k, v):
        out, lse = forward_call(q, k, v)
        return out, (q, k, v, out, lse)

    def backward(residuals, d_out):
        q, k, v, out, lse = residuals
        shapes = tuple(jax.ShapeDtypeStruct(x.shape, jnp.float32) for x in (q, k, v))
        call = jax.ffi.ffi_call(f"{prefix}_backward", shapes, vmap_method="sequential")
        return call(q, k, v, out, lse, d_out, threads=THREADS)

    attention.defvjp(forward, backward)
    return attention


flash_attention = attention_op("tinyslm_flash")
