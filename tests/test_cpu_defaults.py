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
# the second product reads it, so XLA gives it a scratch buffer. The script reports the page faults
# of its third call (the first two compile and warm up) and how many 4 KB pages that buffer spans.
SCRIPT = """
import json, resource
import tinyslm
import jax, jax.numpy as jnp

x, w, v = jnp.ones((8192, 64)), jnp.ones((64, 4096)), jnp.ones((4096, 1))
f = jax.jit(lambda x, w, v: (x @ w) @ v)
for _ in range(2):
    f(x, w, v).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
f(x, w, v).block_until_ready()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"faults": faults, "buffer_pages": 8192 * 4096 * 4 // 4096}))
"""


def _third_call(keep_freed_memory: str) -> dict:
    env = {**os.environ, "TINYSLM_KEEP_FREED_MEMORY": keep_freed_memory, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_scratch_buffer_is_reused_instead_of_mapped_again():
    kept = _third_call("1")
    assert kept["faults"] < kept["buffer_pages"] // 10, kept  # the same pages as the call before
    default = _third_call("0")  # glibc's defaults: the buffer is mapped and zero-filled again
    assert default["faults"] > default["buffer_pages"] // 2, default
