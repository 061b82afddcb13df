"""tinyslm: small language models from scratch in JAX — build, train, decode, compress, and learn how.

Importing tinyslm changes two process-wide defaults, both for speed on a CPU.

* **XLA:CPU's matrix products go through its YNNPACK library fusion**, set before JAX starts its
  backend. On this project's 2-core CPU it ran 1024x1024 float32 matmuls at ~175 GFLOP/s instead
  of ~89 when it was chosen (the default path used one core for them); re-measured on 2026-11-23,
  a noisy day, the two paths tied (see the README). It changes nothing on GPU or TPU. To opt out,
  set ``XLA_FLAGS`` yourself before importing tinyslm (any value containing
  ``xla_cpu_experimental_ynn_fusion_type`` is left alone), or set ``TINYSLM_DEFAULT_XLA_FLAGS=0``.
* **Freed memory stays with the process** (Linux with glibc). Each run of a compiled function gets
  one scratch buffer from ``malloc`` for its intermediate values: ~400 MB for a train step of the
  wide benchmark model. By default glibc serves a block that large with a fresh ``mmap`` and
  unmaps it when it is freed, and it hands the top of its heap back to the kernel as well, so every
  step the kernel maps and zero-fills ~100,000 new 4 KB pages again (a tenth of the step's time).
  tinyslm tells glibc (``mallopt``) to take every block from its heap and never to hand memory
  back, and tells JAX to run CPU computations on the calling thread instead of a worker thread
  (``jax_cpu_enable_async_dispatch``): glibc gives other threads smaller heaps of their own, which
  cannot hold a block that size and fall back to ``mmap``. The next step then reuses the same
  pages. Train steps on the 2-core CPU took 14-20% less time (``benchmarks/README.md``). The cost:
  the process keeps its peak memory until it exits, as a caching allocator does (the heap can grow
  by a few more buffers when small blocks land in a freed one, mostly in the first calls; the wide
  model's peak stayed at ~1.1 GB), and a call into a compiled function returns when its work is done.
  ``TINYSLM_KEEP_FREED_MEMORY=0`` leaves glibc and JAX as they were.
"""

import ctypes
import os
import platform
from pathlib import Path

__version__ = "0.1.0"


def cache_root() -> Path:
    """Where tinyslm keeps what it downloads or builds: ``$TINYSLM_CACHE_DIR``, else ``~/.cache/tinyslm``."""
    return Path(os.environ.get("TINYSLM_CACHE_DIR") or Path.home() / ".cache" / "tinyslm").expanduser()


CPU_XLA_FLAG = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"


def _set_fast_cpu_defaults() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("TINYSLM_DEFAULT_XLA_FLAGS", "1") != "0" and "xla_cpu_experimental_ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {CPU_XLA_FLAG}".strip()


_set_fast_cpu_defaults()

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt's option numbers in glibc's <malloc.h>


def _keep_freed_memory() -> None:
    """glibc only: no block by ``mmap``, no trimming of the heap, computations on the calling thread."""
    if os.environ.get("TINYSLM_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return
    mallopt = ctypes.CDLL(None).mallopt
    mallopt(M_MMAP_MAX, 0)
    mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # the largest value mallopt takes: never trim
    import jax  # read when JAX creates its CPU client, so it must be set before the first computation

    jax.config.update("jax_cpu_enable_async_dispatch", False)


_keep_freed_memory()
