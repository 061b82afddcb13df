"""Knowledge distillation: a small *student* learns from a larger, trained *teacher*.

A one-hot next-token target says only which token came next. The teacher's distribution says much
more: which other tokens were plausible, and how plausible ("the cat sat on the *mat*", but *rug*
and *sofa* were fine too). Training the student to match that distribution gives it more signal
per token than the data alone (Hinton, Vinyals & Dean 2015, arXiv:1503.02531).

**Response-based distillation** (Hinton et al. 2015). Soften both distributions with a temperature
T, p = softmax(z / T), and pull the student towards the teacher with the KL divergence, mixed with
the ordinary cross-entropy by a weight alpha::

    loss = (1 - alpha) * CE(student, next token) + alpha * T² * KL(p_teacher || p_student)

A high T flattens the teacher's distribution and exposes its "dark knowledge" (the relative
probabilities of the unlikely tokens); the T² keeps the size of this term's gradients roughly the
same whatever T is, since the gradient of the softened KL shrinks as 1/T².

*Forward* KL(teacher || student) is mean-seeking: the student must cover every token the teacher
likes. *Reverse* KL(student || teacher) is mode-seeking: the student may ignore some of the
teacher's options but is punished for putting mass where the teacher puts none, which MiniLLM
(Gu et al. 2023, arXiv:2306.08543) argues suits generative students better. MiniLLM optimises the
reverse KL of whole sampled sequences with policy gradients; here it is the token-level reverse
KL on the training text (teacher forcing), its simplest form.

**Feature-based distillation** (FitNets, Romero et al. 2014, arXiv:1412.6550). Also match the
hidden states (the residual stream after chosen blocks) of student and teacher, with MSE or
cosine distance. When their widths differ, a learned linear projection maps the student's
states into the teacher's width; it is trained with the student and thrown away afterwards.

**How it runs.** There is no second training loop: :func:`distill` hands the trainer
(:func:`tinyslm.train.train`) a :class:`~tinyslm.train.TrainingTask` whose module is a
:class:`Distiller` — the student, the frozen teacher and the projections. Only the student and
the projections are trainable; the teacher travels into the compiled step as a frozen argument,
and its logits are computed there, on the fly, under the same ``jax.jit``. The run directory holds
only the student, so it is a normal run that ``tinyslm eval`` and ``tinyslm generate`` load.

Teacher and student must share the tokenizer: the KL compares the two distributions token id by
token id. They may differ in depth, width and number of heads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import optax
import yaml
from flax import nnx

from tinyslm.config import RunConfig, load_config
from tinyslm.errors import CheckpointError, ConfigError
from tinyslm.model import TransformerLM
from tinyslm.model.linear import Linear
from tinyslm.tokenizer import load_tokenizer
from tinyslm.train import TrainingTask, TrainResult, cross_entropy, load_run, train
from tinyslm.train.checkpoint import CONFIG_FILE, TOKENIZER_DIR
from tinyslm.train.task import fresh_model

SETTINGS_FILE = "distill.yaml"  # what a distilled run learned from (teacher, T, alpha, ...): for --resume


@dataclass(frozen=True)
class DistillConfig:
    """How the student learns from the teacher.

    Attributes:
        temperature: T, the softening of both distributions (1 = as they are).
        alpha: weight of the distillation term; ``1 - alpha`` goes to the ordinary cross-entropy.
            0 is plain training, 1 learns from the teacher alone.
        divergence: ``"forward"`` KL(teacher || student) (Hinton) or ``"reverse"`` KL(student || teacher) (MiniLLM).
        features: pairs ``(student_layer, teacher_layer)`` of blocks whose output hidden states are
            matched (0-based; -1 is the last block). Empty: response-based distillation only.
        feature_loss: ``"mse"`` or ``"cosine"`` distance between the (projected) hidden states.
        feature_weight: weight of the feature term (shared equally by the pairs).
    """

    temperature: float = 2.0
    alpha: float = 0.5
    divergence: Literal["forward", "reverse"] = "forward"
    features: tuple[tuple[int, int], ...] = ()
    feature_loss: Literal["mse", "cosine"] = "mse"
    feature_weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple((int(s), int(t)) for s, t in self.features))
        checks = [
            (self.temperature > 0, "temperature", f"must be positive, got {self.temperature}"),
            (0.0 <= self.alpha <= 1.0, "alpha", f"must be in [0, 1], got {self.alpha}"),
            (self.divergence in ("forward", "reverse"), "divergence",
             f"must be 'forward' or 'reverse', got {self.divergence!r}"),
            (self.feature_loss in ("mse", "cosine"), "feature_loss",
             f"must be 'mse' or 'cosine', got {self.feature_loss!r}"),
            (self.feature_weight >= 0, "feature_weight", f"must be >= 0, got {self.feature_weight}"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"distill.{key}: {message}")


# ------------------------------------------------------------------------------------ the losses


def soft_targets(logits: jax.Array, temperature: float) -> jax.Array:
    """The softened distribution softmax(logits / T): logits (..., V) -> probabilities (..., V)."""
    return jax.nn.softmax(logits.astype(jnp.float32) / temperature, axis=-1)


def _masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Mean of per-position values (B, T) over the positions where ``mask`` is 1 (all when None)."""
    if mask is None:
        return values.mean()
    mask = mask.astype(jnp.float32)
    return (values * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def kl_divergence(target_logits: jax.Array, other_logits: jax.Array, temperature: float,
                  mask: jax.Array | None = None) -> jax.Array:
    """Mean over positions of KL(p || q) = sum_v p_v (log p_v - log q_v), p and q softened by T.

    target_logits, other_logits (B, T, V) -> scalar; p comes from ``target_logits``. Computed from
    log-softmax values, so a token that one model finds impossible gives no NaN.
    """
    log_p = jax.nn.log_softmax(target_logits.astype(jnp.float32) / temperature, axis=-1)
    log_q = jax.nn.log_softmax(other_logits.astype(jnp.float32) / temperature, axis=-1)
    return _masked_mean(optax.losses.kl_divergence_with_log_targets(log_q, log_p), mask)


def distillation_loss(student_logits: jax.Array, teacher_logits: jax.Array, targets: jax.Array, *,
                      temperature: float, alpha: float, divergence: str = "forward",
                      mask: jax.Array | None = None) -> jax.Array:
    """Hinton's loss: (1 - alpha) * CE(student, targets) + alpha * T² * KL at temperature T.

    student_logits, teacher_logits (B, T, V), targets (B, T) -> scalar. ``divergence="forward"``
    is KL(teacher || student), ``"reverse"`` KL(student || teacher). Positions where ``mask`` is 0
    (padding) count in neither term. At alpha = 0 this is exactly the cross-entropy.
    """
    hard = cross_entropy(student_logits, targets, mask)
    if divergence == "forward":
        soft = kl_divergence(teacher_logits, student_logits, temperature, mask)
    else:
        soft = kl_divergence(student_logits, teacher_logits, temperature, mask)
    return (1.0 - alpha) * hard + alpha * temperature**2 * soft


def feature_distance(student_states: jax.Array, teacher_states: jax.Array, kind: str = "mse",
                     mask: jax.Array | None = None) -> jax.Array:
    """How far two stacks of hidden states (B, T, D) are apart -> scalar (mean over positions).

    ``"mse"``: the mean squared difference per feature (FitNets' hint loss). ``"cosine"``:
    1 - cosine similarity, which ignores length and compares only direction.
    """
    s, t = student_states.astype(jnp.float32), teacher_states.astype(jnp.float32)
    if kind == "mse":
        per_position = jnp.square(s - t).mean(-1)
    else:
        dot = (s * t).sum(-1)
        per_position = 1.0 - dot / jnp.maximum(jnp.linalg.norm(s, axis=-1) * jnp.linalg.norm(t, axis=-1), 1e-8)
    return _masked_mean(per_position, mask)


# ------------------------------------------------------------------------------------ the module


def block_outputs(model: TransformerLM, tokens: jax.Array, dropout_key: jax.Array | None = None
                  ) -> tuple[jax.Array, list[jax.Array]]:
    """One forward pass -> logits (B, T, V) and the residual stream after every block, [(B, T, D)] * n_layers.

    ``nnx.capture`` records what each sub-module's methods return during the call, so the hidden
    states come out of the model's own forward pass without changing its code.
    """
    logits, captured = nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(
        tokens, dropout_key=dropout_key)
    # each block returns (hidden states, KV cache); its first (only) call is entry 0
    return logits, [captured["blocks"][i]["__call__"][0][0] for i in range(len(model.blocks))]


class Distiller(nnx.Module):
    """What distillation trains: the student next to the frozen teacher, plus one learned projection
    (student width -> teacher width) per matched layer pair when the widths differ."""

    def __init__(self, student: TransformerLM, teacher: TransformerLM, settings: DistillConfig, *, rngs: nnx.Rngs):
        s, t = student.config, teacher.config
        if s.vocab_size != t.vocab_size:
            raise ConfigError(f"the student predicts {s.vocab_size} tokens and the teacher {t.vocab_size}: "
                              "distillation compares their distributions token by token, so they must share "
                              "the tokenizer (and its vocabulary size)")
        for student_layer, teacher_layer in settings.features:
            if not (-s.n_layers <= student_layer < s.n_layers and -t.n_layers <= teacher_layer < t.n_layers):
                raise ConfigError(f"distill.features: pair {student_layer}:{teacher_layer} is out of range; the "
                                  f"student has blocks 0..{s.n_layers - 1}, the teacher 0..{t.n_layers - 1}")
        self.student, self.teacher = student, teacher
        widths_differ = s.d_model != t.d_model
        # ~N(0, 1/d_in): a projection that roughly keeps the scale of what it maps
        self.projections = nnx.List([
            Linear(s.d_model, t.d_model, bias=False, std=s.d_model**-0.5, rngs=rngs)
            for _ in settings.features if widths_differ
        ])

    def project(self, pair_index: int, states: jax.Array) -> jax.Array:
        """Student states (B, T, d_student) -> (B, T, d_teacher); the identity when the widths agree."""
        return self.projections[pair_index](states) if len(self.projections) else states


def make_distillation_loss(settings: DistillConfig):
    """The trainer's loss ``loss(distiller, windows, dropout_key)`` for these settings.

    windows (B, T+1): the student sees windows[:, :-1] and predicts windows[:, 1:]. The teacher runs
    without dropout and outside the gradient (its parameters are frozen anyway; ``stop_gradient``
    also skips its backward pass).
    """

    def loss(distiller: Distiller, windows: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        inputs, targets = windows[:, :-1], windows[:, 1:]
        if not settings.features:
            student_logits = distiller.student(inputs, dropout_key=dropout_key)
            teacher_logits = jax.lax.stop_gradient(distiller.teacher(inputs))
        else:
            student_logits, student_states = block_outputs(distiller.student, inputs, dropout_key)
            teacher_logits, teacher_states = jax.lax.stop_gradient(block_outputs(distiller.teacher, inputs))
        total = distillation_loss(student_logits, teacher_logits, targets, temperature=settings.temperature,
                                  alpha=settings.alpha, divergence=settings.divergence)
        for i, (student_layer, teacher_layer) in enumerate(settings.features):
            matched = distiller.project(i, student_states[student_layer])
            distance = feature_distance(matched, teacher_states[teacher_layer], settings.feature_loss)
            total = total + settings.feature_weight / len(settings.features) * distance
        return total

    return loss


# ------------------------------------------------------------------------------------ the run


def _require_run(run_dir: Path, role: str) -> None:
    if not (run_dir / CONFIG_FILE).is_file() or not (run_dir / TOKENIZER_DIR).is_dir():
        raise CheckpointError(f"the {role} {run_dir} is not a run directory (no {CONFIG_FILE} or {TOKENIZER_DIR}/); "
                              f"train one first with `tinyslm train --out {run_dir}`")


def _tokenizer_files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / TOKENIZER_DIR).iterdir()) if p.is_file()}


def check_same_tokenizer(teacher: Path, config: RunConfig, student_from: Path | None = None) -> None:
    """Fail with a clear message unless the student will use exactly the teacher's tokenizer.

    A student started from a run (``student_from``, e.g. a pruned teacher) must carry identical
    tokenizer files; a student built from a config must ask for the teacher's tokenizer settings
    (it is then given the teacher's trained tokenizer itself).
    """
    _require_run(teacher, "teacher")
    if student_from is not None:
        _require_run(student_from, "student run")
        if _tokenizer_files(student_from) != _tokenizer_files(teacher):
            raise ConfigError(f"the student run {student_from} and the teacher {teacher} have different tokenizers; "
                              "distillation compares next-token distributions id by id, so both must share one")
        return
    teacher_tokenizer = load_config(teacher / CONFIG_FILE).tokenizer
    if config.tokenizer != teacher_tokenizer:
        raise ConfigError(
            f"tokenizer: the student config asks for {config.tokenizer} but the teacher uses {teacher_tokenizer}; "
            "distillation compares next-token distributions id by id, so the student must use the teacher's "
            f"tokenizer: set tokenizer.type={teacher_tokenizer.type} tokenizer.vocab_size={teacher_tokenizer.vocab_size}")


def distillation_task(teacher: str | Path, settings: DistillConfig = DistillConfig(),
                      student_from: str | Path | None = None) -> TrainingTask:
    """The :class:`TrainingTask` that distils ``teacher`` (a run directory) into a student.

    The student starts from random weights of the run config's ``model`` (exactly as plain training
    would start) or, with ``student_from``, from that run's weights (Minitron's recipe: prune the
    teacher, then recover it by distillation). Only the student and projections are trained; the
    run directory saves only the student.
    """
    teacher = Path(teacher)
    student_from = None if student_from is None else Path(student_from)

    def init_model(config: RunConfig) -> Distiller:
        student = fresh_model(config) if student_from is None else load_run(student_from).model
        # projections get their own random stream, so the student's start is that of plain training
        return Distiller(student, load_run(teacher).model, settings, rngs=nnx.Rngs(config.train.seed + 1))

    return TrainingTask(
        init_model=init_model,
        tokenizer=load_tokenizer(teacher / TOKENIZER_DIR),
        loss=make_distillation_loss(settings),
        trainable=nnx.All(nnx.Param, nnx.Not(nnx.PathContains("teacher"))),
        saved=lambda distiller: distiller.student,
    )


def distill(config: RunConfig, teacher: str | Path, out: str | Path, settings: DistillConfig = DistillConfig(), *,
            student_from: str | Path | None = None, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train the student described by ``config`` (its ``model``, ``data`` and ``train`` sections)
    on ``teacher``'s predictions into the run directory ``out``.

    With ``student_from`` the student starts from that run's weights and architecture (e.g. a pruned
    teacher); ``config.model`` must then be that run's. The settings are written to ``out/distill.yaml``.
    """
    teacher, out = Path(teacher), Path(out)
    student_from = None if student_from is None else Path(student_from)
    check_same_tokenizer(teacher, config, student_from)
    if student_from is not None and config.model != load_config(student_from / CONFIG_FILE).model:
        raise ConfigError(f"model: the student starts from {student_from}, so the config's model section must be "
                          f"that run's; load the config from {student_from / CONFIG_FILE}")
    if resume:
        check_same_tokenizer(teacher, config, out)
    result = train(config, out, resume=resume, progress=progress,
                   task=distillation_task(teacher, settings, student_from))
    record = {"teacher": str(teacher), "student_from": None if student_from is None else str(student_from),
              **asdict(settings), "features": [list(pair) for pair in settings.features]}
    (out / SETTINGS_FILE).write_text(yaml.safe_dump(record, sort_keys=False))
    return result


def read_settings(run_dir: str | Path) -> tuple[Path, Path | None, DistillConfig]:
    """What a distilled run was distilled from: (teacher, student_from, settings), from its distill.yaml."""
    path = Path(run_dir) / SETTINGS_FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no {SETTINGS_FILE}: it was not written by `tinyslm distill`; "
                              "give --teacher and the distillation options again")
    record = yaml.safe_load(path.read_text())
    teacher, student_from = Path(record.pop("teacher")), record.pop("student_from")
    return teacher, None if student_from is None else Path(student_from), DistillConfig(**record)


__all__ = [
    "DistillConfig", "Distiller", "soft_targets", "kl_divergence", "distillation_loss", "feature_distance",
    "block_outputs", "make_distillation_loss", "distillation_task", "distill", "check_same_tokenizer",
    "read_settings", "SETTINGS_FILE",
]
