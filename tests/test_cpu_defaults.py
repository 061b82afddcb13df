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
# faults of each of 32 calls and how many 4 KB pages that buffer spans.
SCRIPT = """
import json, resource
import tinyslm
import jax, jax.numpy as jnp

x, w, v = jnp.ones((8192, 64)), jnp.ones((64, 4096)), jnp.ones((4096, 1))
f = jax.jit(lambda x, w, v: (x @ w) @ v)
faults = []
for _ in range(32):
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


def _calls_faulting_the_buffer(faults: list[int], pages: int) -> int:
    return sum(f > pages // 2 for f in faults)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_scratch_buffer_is_reused_instead_of_mapped_again():
    """Over the last 16 of 32 calls: fewer than half fault the buffer's pages in again; without the setting, all do.

    Calls may still fault with the setting: a small block allocated between calls can land in the
    freed buffer, and the heap then grows by a new one. Alone, that was seen in the first 1-7
    calls only; once, in CI beside another test process, in 3 of 8 later calls too.
    """
    kept, pages = _calls("1")
    assert _calls_faulting_the_buffer(kept[16:], pages) < 8, kept
    default, pages = _calls("0")  # glibc's defaults: mapped and zero-filled again on every call
    assert _calls_faulting_the_buffer(default[16:], pages) == 16, default
