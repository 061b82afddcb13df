"""Importing tinyslm keeps freed memory in the process, so a compiled function's scratch buffer is reused.

Each case runs in a fresh interpreter: glibc's allocator settings and JAX's CPU client are
process-wide and are fixed by the first import.
"""

import json
import os
import platform
import subprocess
import sys

import pytest

# A computation with a 128 MB intermediate: the (8192, 4096) product must be materialised before
# the second product reads it, so XLA gives it a scratch buffer. The script reports the minor page
# faults of each of 16 calls and how many 4 KB pages that buffer spans.
SCRIPT = """
import json, resource
import tinyslm
import jax, jax.numpy as jnp

x, w, v = jnp.ones((8192, 64)), jnp.ones((64, 4096)), jnp.ones((4096, 1))
f = jax.jit(lambda x, w, v: (x @ w) @ v)
faults = []
for _ in range(16):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    f(x, w, v).block_until_ready()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"faults": faults, "buffer_pages": 8192 * 4096 * 4 // 4096}))
"""


def _calls(keep_freed_memory: str) -> tuple[list[int], int]:
    env = {**os.environ, "TINYSLM_KEEP_FREED_MEMORY": keep_freed_memory, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["faults"], report["buffer_pages"]


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_scratch_buffer_is_reused_instead_of_mapped_again():
    """Over the last 8 of 16 calls: the buffer's pages are faulted in again by at most 2 calls, not by every one.

    The first calls may still fault: small blocks allocated between calls can land in the freed
    buffer, and the heap then grows until a free region fits it (seen: 1-7 calls, then none).
    """
    kept, pages = _calls("1")
    assert sum(kept[8:]) < 2 * pages, kept
    default, pages = _calls("0")  # glibc's defaults: mapped and zero-filled again on every call
    assert sum(default[8:]) > 6 * pages, default
