"""Training on every device JAX sees: a device mesh, and where each array lives on it.

JAX runs one program over many devices by *sharding* arrays (SPMD: single program, multiple
data). We name the devices' layout once, as a mesh with two axes, and say for each array which
of its dimensions is split along which mesh axis; ``jax.jit`` then compiles the train step for
the whole mesh and inserts the communication (all-reduce of gradients, all-gather of weights)
itself. Nothing in the model's code mentions devices.

* ``data`` axis — data parallelism: every device holds all the weights and a slice of the batch;
  the gradients are averaged across devices (an all-reduce) before the update.
* ``fsdp`` axis — fully sharded data parallelism (ZeRO-3, Rajbhandari et al. 2020,
  arXiv:1910.02054): the batch is split as before, and each weight matrix (and its Adam moments)
  is split too, so a device stores 1/N of the model; weights are gathered just before use.

``train.mesh`` chooses the layout: ``auto`` puts every device on the ``data`` axis; ``fsdp``
puts every device on the ``fsdp`` axis; ``data=2,fsdp=4`` names both sizes. The global batch
(``train.batch_size``) is the same whatever the mesh, so 1, 2 or 4 devices compute the same
losses — only faster.

On several hosts (a TPU pod slice, a GPU cluster) every process runs the same command;
``initialize_distributed`` connects them (``jax.distributed.initialize``) and the mesh spans
all their devices. Each process builds the same global batch (it is a pure function of the
step) and hands JAX only the rows its own devices hold.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from tinyslm.errors import ConfigError

AXES = ("data", "fsdp")
BATCH_AXES = AXES  # a batch is split over both axes: fsdp is data parallel too


def mesh_shape(spec: str, n_devices: int) -> dict[str, int]:
    """Parse ``train.mesh`` into axis sizes whose product is ``n_devices``.

    >>> mesh_shape("auto", 4), mesh_shape("fsdp", 4), mesh_shape("data=2,fsdp=2", 4)
    ({'data': 4, 'fsdp': 1}, {'data': 1, 'fsdp': 4}, {'data': 2, 'fsdp': 2})
    """
    spec = spec.replace(" ", "")
    if spec in ("auto", "data"):
        return {"data": n_devices, "fsdp": 1}
    if spec == "fsdp":
        return {"data": 1, "fsdp": n_devices}
    sizes = {"data": 1, "fsdp": 1}
    for part in spec.split(","):
        name, _, size = part.partition("=")
        if name not in sizes or not size.isdigit() or int(size) < 1:
            raise ConfigError(f"train.mesh: cannot read {part!r} in {spec!r}; use auto, fsdp, or e.g. data=2,fsdp=4")
        sizes[name] = int(size)
    if sizes["data"] * sizes["fsdp"] != n_devices:
        raise ConfigError(f"train.mesh: {spec!r} needs {sizes['data'] * sizes['fsdp']} devices, "
                          f"but JAX sees {n_devices}; use train.mesh=auto to take them all")
    return sizes


def make_mesh(spec: str = "auto", devices: list | None = None) -> Mesh:
    """A ``(data, fsdp)`` mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    sizes = mesh_shape(spec, len(devices))
    return Mesh(np.asarray(devices).reshape(sizes["data"], sizes["fsdp"]), AXES)


def check_batch_divides(batch_size: int, mesh: Mesh) -> None:
    """Each device must get the same number of rows: fail early, with the fix, when they cannot."""
    n = mesh.size
    if batch_size % n:
        raise ConfigError(f"train.batch_size={batch_size} cannot be split evenly over {n} devices; "
                          f"use a multiple of {n} (e.g. {n * max(1, round(batch_size / n))}) or change train.mesh")


def batch_sharding(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
    """Rows split over every device; ``leading_axes`` dimensions before the rows (micro-batches) kept whole."""
    return NamedSharding(mesh, PartitionSpec(*([None] * leading_axes), BATCH_AXES))


def shard_batch(batch, mesh: Mesh, leading_axes: int = 0):
    """Place a host batch (a pytree of NumPy arrays) on the mesh, each device receiving only its rows."""
    sharding = batch_sharding(mesh, leading_axes)

    def place(array):
        array = np.asarray(array)
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    return jax.tree.map(place, batch)


def weight_shardings(state, mesh: Mesh):
    """Replicated weights on a pure data mesh; under fsdp each array is split along its largest
    dimension that the fsdp axis divides (arrays with none, like scalars, stay replicated)."""
    fsdp = mesh.shape["fsdp"]

    def spec(leaf) -> NamedSharding:
        shape = getattr(leaf, "shape", ())
        if fsdp > 1:
            for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
                if shape[dim] % fsdp == 0:
                    return NamedSharding(mesh, PartitionSpec(*[("fsdp" if d == dim else None) for d in range(len(shape))]))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(spec, state)


def shard_weights(state, mesh: Mesh):
    """A copy of a pytree of weights (or optimizer state) on the mesh, as :func:`weight_shardings` says.

    Always a copy (``may_alias=False``): the train step donates these buffers, and donating arrays
    the caller still holds (say, a loaded run's model) would delete them under the caller's feet.
    """
    return jax.device_put(state, weight_shardings(state, mesh), may_alias=False)


def initialize_distributed() -> None:
    """Connect the processes of a multi-host job (one call per process, before any JAX work).

    JAX finds the coordinator itself on Cloud TPU pods and under SLURM or Open MPI; elsewhere set
    ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. ``tinyslm train
    --distributed`` calls this.
    """
    jax.distributed.initialize(
        coordinator_address=os.environ.get("JAX_COORDINATOR_ADDRESS"),
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]) if "JAX_NUM_PROCESSES" in os.environ else None,
        process_id=int(os.environ["JAX_PROCESS_ID"]) if "JAX_PROCESS_ID" in os.environ else None,
    )


def is_main_process() -> bool:
    """Only process 0 prints, logs metrics and draws plots (checkpoints are written by all together)."""
    return jax.process_index() == 0
