"""The workshop notebooks: committed with the outputs of a full run, and executable in smoke mode.

* Unmarked (fast): every notebook in notebooks/ is committed executed, with outputs, with plots,
  from a full run (not smoke mode), and with no error output.
* ``@pytest.mark.notebook``: each notebook runs top to bottom with ``TINYSLM_SMOKE=1`` in a kernel
  of the interpreter running pytest, with a timeout per cell (two notebooks at a time).
"""

from __future__ import annotations

import json
import os
import re
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 300
KERNEL_NAME = "tinyslm-test-python"


def _id(path: Path) -> str:
    return path.stem


def test_every_lesson_has_its_notebook():
    lessons = sorted(p.name for p in (ROOT / "lessons").iterdir() if p.is_dir() and re.match(r"\d\d_", p.name))
    assert [p.stem for p in NOTEBOOKS] == lessons
    assert [p.stem[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_committed_with_full_run_outputs_and_no_errors(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{path.name} has no code"
    unexecuted = [i for i, c in enumerate(code) if c.get("execution_count") is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were not executed; run the notebook and save it"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} is committed with an error: {errors[0].ename}: {errors[0].evalue}"
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} has no plot outputs"
    text = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "JAX devices:" in text, f"{path.name} does not print jax.devices()"
    assert "(smoke mode)" not in text, f"{path.name} was saved from a smoke run; save the outputs of a full run"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_opens_with_goals_and_time_and_installs_nothing(path):
    nb = nbformat.read(path, as_version=4)
    intro = nb.cells[0].source
    assert nb.cells[0].cell_type == "markdown" and "You will learn" in intro and "Time:" in intro
    for cell in nb.cells:
        if cell.cell_type == "code":
            for line in cell.source.splitlines():
                assert not re.match(r"\s*[!%]\s*(pip|conda|apt)", line), f"{path.name} installs something: {line}"
    assert "TINYSLM_SMOKE" in "".join(c.source for c in nb.cells if c.cell_type == "code")
    checkout_parent = str(Path(__file__).resolve().parents[2]) + os.sep  # the folder the repository sits in
    assert checkout_parent not in json.dumps(nb.cells), f"{path.name} hard-codes a local path"


@pytest.fixture(scope="session")
def kernel(tmp_path_factory):
    """A kernelspec that runs this very interpreter, so the notebooks see the same tinyslm."""
    spec_dir = tmp_path_factory.mktemp("jupyter") / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tinyslm tests", "language": "python",
    }))
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(spec_dir.parents[1])] + ([previous] if previous else []))
    yield KERNEL_NAME
    if previous is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = previous


def _run_in_smoke_mode(path: Path, kernel: str, env: dict) -> str:
    """Execute a notebook in a fresh kernel with ``env``; return the text it printed.

    Raises CellExecutionError, naming the cell, on the first error."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=kernel,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.fixture(scope="session")
def smoke_runs(request, kernel) -> dict[Path, Future]:
    """The smoke run of every *selected* notebook, started at once, two kernels at a time.

    The notebooks' tiny models spend most of their time compiling, which uses one core; two
    kernels side by side keep both cores of a CI machine busy. Each notebook writes only to its
    own temporary directories, so they do not interfere."""
    paths = [item.callspec.params["path"] for item in request.session.items
             if getattr(item, "originalname", "") == "test_runs_top_to_bottom_in_smoke_mode"]
    env = {**os.environ, "TINYSLM_SMOKE": "1"}
    shared = ROOT.parent / "shared" / "data"
    if "TINYSLM_DATA_DIR" not in env and shared.is_dir():
        env["TINYSLM_DATA_DIR"] = str(shared)
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {path: pool.submit(_run_in_smoke_mode, path, kernel, env) for path in paths}


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_runs_top_to_bottom_in_smoke_mode(path, smoke_runs):
    assert "(smoke mode)" in smoke_runs[path].result()
