"""tinyslm: small language models from scratch in JAX — build, train, decode, compress, and learn how.

Importing tinyslm turns on one XLA:CPU setting before JAX starts its backend: matrix
multiplications go through XLA's YNNPACK library fusion. On this project's 2-core CPU it ran
1024x1024 float32 matmuls at ~175 GFLOP/s instead of ~89 when it was chosen (the default path
used one core for them); re-measured on 2026-11-23, a noisy day, the two paths tied (see the
README). It changes nothing on GPU or TPU. To opt out, set ``XLA_FLAGS`` yourself before importing
tinyslm (any value containing ``xla_cpu_experimental_ynn_fusion_type`` is left alone), or set
``TINYSLM_DEFAULT_XLA_FLAGS=0``.
"""

import os
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
