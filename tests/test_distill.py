"""Knowledge distillation: the losses against NumPy, the frozen teacher, and a distilled run end to end."""

import json
import shutil
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tinyslm.cli import main
from tinyslm.compress.distill import (
    DistillConfig, Distiller, block_outputs, distill, distillation_loss, distillation_task, feature_distance,
    kl_divergence, make_distillation_loss, read_settings, soft_targets,
)
from tinyslm.config import ModelConfig, load_config
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM
from tinyslm.train import MetricsLog, cross_entropy, load_run, save_run, train
from tinyslm.train.evaluate import evaluate_tokens

# ------------------------------------------------------------------------------ NumPy references


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_kd_loss(student, teacher, targets, T, alpha, reverse=False, mask=None):
    """Hinton et al. 2015 written out position by position, in float64."""
    student, teacher = student.astype(np.float64), teacher.astype(np.float64)
    B, S, V = student.shape
    mask = np.ones((B, S)) if mask is None else mask
    ce = kl = 0.0
    for b in range(B):
        for t in range(S):
            if not mask[b, t]:
                continue
            ce -= np_log_softmax(student[b, t])[targets[b, t]]
            log_ps, log_pt = np_log_softmax(student[b, t] / T), np_log_softmax(teacher[b, t] / T)
            p, log_p, log_q = (np.exp(log_ps), log_ps, log_pt) if reverse else (np.exp(log_pt), log_pt, log_ps)
            kl += np.sum(p * (log_p - log_q))
    n = mask.sum()
    return (1 - alpha) * ce / n + alpha * T**2 * kl / n


def random_logits(seed, shape=(2, 5, 11), scale=3.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


# ------------------------------------------------------------------------------ the losses


@pytest.mark.parametrize("T,alpha,reverse", [(1.0, 0.5, False), (2.0, 0.7, False), (4.0, 1.0, False),
                                             (0.5, 0.3, False), (2.0, 0.5, True), (1.0, 1.0, True)])
def test_kd_loss_equals_a_naive_numpy_computation(T, alpha, reverse):
    student, teacher = random_logits(0), random_logits(1)
    targets = np.random.default_rng(2).integers(0, 11, (2, 5))
    got = distillation_loss(student, teacher, targets, temperature=T, alpha=alpha,
                            divergence="reverse" if reverse else "forward")
    np.testing.assert_allclose(float(got), np_kd_loss(student, teacher, targets, T, alpha, reverse), rtol=1e-5)


def test_padding_counts_in_neither_term():
    student, teacher = random_logits(3), random_logits(4)
    targets = np.random.default_rng(5).integers(0, 11, (2, 5))
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], np.float32)
    got = distillation_loss(student, teacher, targets, temperature=2.0, alpha=0.6, mask=mask)
    np.testing.assert_allclose(float(got), np_kd_loss(student, teacher, targets, 2.0, 0.6, mask=mask), rtol=1e-5)
    # what sits under the padding does not matter
    garbage = student.copy()
    garbage[mask == 0] = 1e3
    np.testing.assert_allclose(float(distillation_loss(garbage, teacher, targets, temperature=2.0, alpha=0.6, mask=mask)),
                               float(got), rtol=1e-6)


def test_alpha_zero_is_plain_cross_entropy():
    student, teacher = random_logits(6), random_logits(7)
    targets = np.random.default_rng(8).integers(0, 11, (2, 5))
    assert float(distillation_loss(student, teacher, targets, temperature=3.0, alpha=0.0)) == \
        float(cross_entropy(jnp.asarray(student), jnp.asarray(targets)))


def test_identical_logits_at_t1_give_zero_kl_and_kl_is_positive_otherwise():
    logits = random_logits(9)
    assert float(kl_divergence(logits, logits, 1.0)) == pytest.approx(0.0, abs=1e-6)
    targets = np.zeros((2, 5), int)
    assert float(distillation_loss(logits, logits, targets, temperature=1.0, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_divergence(logits, random_logits(10), 1.0)) > 0.1


def test_temperature_flattens_the_soft_targets():
    logits = random_logits(11, shape=(20,))
    entropy = [float(-(p * jnp.log(p)).sum()) for p in (soft_targets(logits, T) for T in (0.5, 1.0, 2.0, 8.0))]
    assert entropy == sorted(entropy) and entropy[-1] < np.log(20) + 1e-6
    np.testing.assert_allclose(soft_targets(logits, 2.0), np.exp(np_log_softmax(logits / 2.0)), rtol=1e-5)


def test_feature_distance_equals_numpy():
    rng = np.random.default_rng(12)
    s, t = rng.normal(size=(2, 3, 8)).astype(np.float32), rng.normal(size=(2, 3, 8)).astype(np.float32)
    np.testing.assert_allclose(float(feature_distance(s, t, "mse")), np.mean((s - t) ** 2), rtol=1e-5)
    cos = (s * t).sum(-1) / (np.linalg.norm(s, axis=-1) * np.linalg.norm(t, axis=-1))
    np.testing.assert_allclose(float(feature_distance(s, t, "cosine")), np.mean(1 - cos), rtol=1e-5)
    assert float(feature_distance(s, 3.0 * s, "cosine")) == pytest.approx(0.0, abs=1e-6)  # direction only


def test_settings_are_validated_with_the_key_named():
    with pytest.raises(ConfigError, match="distill.alpha"):
        DistillConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="distill.temperature"):
        DistillConfig(temperature=0.0)
    with pytest.raises(ConfigError, match="distill.divergence"):
        DistillConfig(divergence="sideways")


# ------------------------------------------------------------------------------ the module

TEACHER_MODEL = ModelConfig(vocab_size=23, d_model=48, n_layers=3, n_heads=4, n_kv_heads=2, max_seq_len=16)
STUDENT_MODEL = ModelConfig(vocab_size=23, d_model=32, n_layers=2, n_heads=2, max_seq_len=16)


def small_distiller(settings):
    return Distiller(TransformerLM(STUDENT_MODEL, rngs=nnx.Rngs(0)), TransformerLM(TEACHER_MODEL, rngs=nnx.Rngs(1)),
                     settings, rngs=nnx.Rngs(2))


def test_block_outputs_come_from_the_models_own_forward_pass():
    model = TransformerLM(TEACHER_MODEL, rngs=nnx.Rngs(1))
    tokens = jnp.asarray(np.random.default_rng(13).integers(0, 23, (2, 7)))
    logits, states = block_outputs(model, tokens)
    assert [s.shape for s in states] == [(2, 7, 48)] * 3
    np.testing.assert_array_equal(logits, model(tokens))
    hidden, _ = model.hidden_states(tokens)
    np.testing.assert_allclose(model.final_norm(states[-1]), hidden, rtol=1e-6)


def test_projections_map_student_width_to_teacher_width_for_each_pair():
    distiller = small_distiller(DistillConfig(features=((0, 1), (-1, -1))))
    assert [p.kernel.shape for p in distiller.projections] == [(32, 48), (32, 48)]
    assert distiller.project(1, jnp.ones((2, 7, 32))).shape == (2, 7, 48)
    same_width = Distiller(TransformerLM(STUDENT_MODEL, rngs=nnx.Rngs(0)), TransformerLM(STUDENT_MODEL, rngs=nnx.Rngs(1)),
                           DistillConfig(features=((0, 0),)), rngs=nnx.Rngs(2))
    assert len(same_width.projections) == 0  # nothing to learn when the widths agree
    with pytest.raises(ConfigError, match="out of range"):
        small_distiller(DistillConfig(features=((2, 0),)))
    with pytest.raises(ConfigError, match="share"):
        Distiller(TransformerLM(STUDENT_MODEL, rngs=nnx.Rngs(0)),
                  TransformerLM(ModelConfig(vocab_size=30, d_model=32, n_layers=1, n_heads=2), rngs=nnx.Rngs(1)),
                  DistillConfig(), rngs=nnx.Rngs(2))


@pytest.mark.parametrize("features", [(), ((0, 1), (1, 2))])
def test_gradients_reach_the_student_and_projections_never_the_teacher(features):
    distiller = small_distiller(DistillConfig(temperature=2.0, alpha=0.8, features=features, feature_loss="cosine"))
    loss_fn = make_distillation_loss(DistillConfig(temperature=2.0, alpha=0.8, features=features, feature_loss="cosine"))
    windows = jnp.asarray(np.random.default_rng(14).integers(0, 23, (2, 9)))
    graphdef, params = nnx.split(distiller, nnx.Param)  # differentiate with respect to *every* parameter
    grads = jax.grad(lambda p: loss_fn(nnx.merge(graphdef, p), windows, None))(params)
    norm = lambda tree: float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(tree)))  # noqa: E731
    assert norm(grads["teacher"]) == 0.0
    assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads["student"]))
    projection_grads = jax.tree.leaves(grads["projections"]) if "projections" in grads else []
    assert (norm(projection_grads) > 0) if features else not projection_grads


# ------------------------------------------------------------------------------ runs

TINY = ["data.corpus_bytes=60000", "tokenizer.type=char", "model.max_seq_len=32", "train.seq_len=32",
        "train.batch_size=8", "train.warmup_steps=5", "train.lr=3e-3", "train.eval_batches=2", "train.log_interval=1"]
TEACHER = [*TINY, "model.d_model=48", "model.n_layers=2", "model.n_heads=4", "model.n_kv_heads=2",
           "train.max_steps=30", "train.eval_interval=30"]
STUDENT = [*TINY, "model.d_model=32", "model.n_layers=1", "model.n_heads=2", "train.max_steps=30",
           "train.eval_interval=30", "train.ckpt_interval=30"]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill") / "teacher"
    train(load_config(None, TEACHER), out, progress=False)
    return out


def teacher_kl(run_dir, teacher_dir) -> float:
    """Mean KL(teacher || student) at T=1 over windows of the student's validation tokens."""
    student, teacher = load_run(run_dir).model, load_run(teacher_dir).model
    val = np.fromfile(run_dir / "data/val.bin", dtype=np.uint16)[: 8 * 33].astype(np.int32).reshape(8, 33)[:, :-1]
    return float(kl_divergence(teacher(jnp.asarray(val)), student(jnp.asarray(val)), 1.0))


def test_a_distilled_student_is_a_normal_run_that_learned_its_teacher_and_the_teacher_never_changes(teacher_run, tmp_path):
    # a confident teacher whose predictions the text alone cannot teach: random weights with a large init
    teacher_config = load_config(teacher_run / "config.yaml", ["model.init_std=0.3"])
    save_run(tmp_path / "teacher", teacher_config, TransformerLM(teacher_config.model, rngs=nnx.Rngs(5)),
             load_run(teacher_run).tokenizer)
    config = load_config(None, [*STUDENT, "train.max_steps=20", "train.eval_interval=20"])
    task = distillation_task(tmp_path / "teacher", DistillConfig(temperature=1.0, alpha=1.0))
    built = []  # keep a handle on the Distiller the trainer trains
    recording = replace(task, init_model=lambda c: built.append(task.init_model(c)) or built[-1])
    result = train(config, tmp_path / "distilled", task=recording, progress=False)
    train(config, tmp_path / "scratch", progress=False)

    teacher_before = load_run(tmp_path / "teacher").model
    for before, after in zip(jax.tree.leaves(nnx.state(teacher_before)), jax.tree.leaves(nnx.state(built[0].teacher))):
        np.testing.assert_array_equal(before, after)
    run = load_run(tmp_path / "distilled")  # the run directory is the student alone
    assert run.config.model.d_model == 32 and run.step == 20
    for loaded, trained in zip(jax.tree.leaves(nnx.state(run.model)), jax.tree.leaves(nnx.state(result.model))):
        np.testing.assert_array_equal(loaded, trained)
    assert (tmp_path / "distilled/tokenizer").exists() and (tmp_path / "distilled/loss.png").exists()
    # the student learned the teacher's distribution, which the data alone does not teach
    distilled_kl = teacher_kl(tmp_path / "distilled", tmp_path / "teacher")
    assert distilled_kl < 0.9 * teacher_kl(tmp_path / "scratch", tmp_path / "teacher")


def test_a_student_with_another_tokenizer_is_refused(teacher_run, tmp_path):
    with pytest.raises(ConfigError, match="tokenizer"):
        distill(load_config(None, [*STUDENT, "tokenizer.type=bpe"]), teacher_run, tmp_path / "s", progress=False)
    other = [*TINY, "data.corpus_bytes=30000", "data.seed=7", "model.d_model=32", "model.n_layers=1", "model.n_heads=2",
             "train.max_steps=1", "train.eval_interval=1"]
    train(load_config(None, other), tmp_path / "other", progress=False)  # a char vocabulary of other text
    with pytest.raises(ConfigError, match="different tokenizers"):
        distill(load_config(tmp_path / "other/config.yaml"), teacher_run, tmp_path / "s", student_from=tmp_path / "other",
                progress=False)
    assert not (tmp_path / "s").exists()


def losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in MetricsLog(run_dir / "metrics.jsonl").read() if r["event"] == "train"}


SETTINGS = DistillConfig(temperature=3.0, alpha=0.7, features=((0, 1),), feature_loss="cosine")
RESUMABLE = [*STUDENT, "train.ckpt_interval=4", "train.eval_interval=4", "train.decay_steps=8"]
CLI_SETTINGS = ["--temperature", "3", "--alpha", "0.7", "--features", "0:1", "--feature-loss", "cosine"]


def cli_sets(overrides):
    return [arg for item in overrides for arg in ("--set", item)]


@pytest.fixture(scope="module")
def cli_run(teacher_run, tmp_path_factory):
    """A 4-step feature distillation made by `tinyslm distill` (checkpoint at step 4)."""
    out = tmp_path_factory.mktemp("cli") / "student"
    assert main(["distill", "--teacher", str(teacher_run), *cli_sets([*RESUMABLE, "train.max_steps=4"]), *CLI_SETTINGS,
                 "--out", str(out), "--no-progress"]) == 0
    return out


def test_cli_distills_into_a_run_that_eval_and_generate_load(teacher_run, cli_run, capsys):
    assert read_settings(cli_run) == (teacher_run, None, SETTINGS)
    assert load_run(cli_run).step == 4
    capsys.readouterr()
    assert main(["eval", "--run", str(cli_run), "--json"]) == 0
    val_loss = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["val_loss"]
    assert val_loss < np.log(load_run(cli_run).config.model.vocab_size)  # it learned something
    assert main(["generate", "--run", str(cli_run), "--prompt", "I have", "--max-new-tokens", "5"]) == 0


def test_cli_reports_one_line_errors(teacher_run, tmp_path, capsys):
    assert main(["distill", "--teacher", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "teacher" in (err := capsys.readouterr().err) and "not a run directory" in err
    assert main(["distill", "--teacher", str(teacher_run), *cli_sets(STUDENT), "--alpha", "2",
                 "--out", str(tmp_path / "y")]) == 2
    assert "distill.alpha" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(teacher_run), "--features", "1-3", "--out", str(tmp_path / "z")]) == 2
    assert "STUDENT_LAYER:TEACHER_LAYER" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("x", "y", "z"))


@pytest.mark.slow
def test_cli_resume_continues_a_feature_distillation_bit_identically(teacher_run, cli_run, tmp_path, capsys):
    straight = distill(load_config(None, [*RESUMABLE, "train.max_steps=8"]), teacher_run, tmp_path / "straight", SETTINGS,
                       progress=False)
    resumed = tmp_path / "resumed"
    shutil.copytree(cli_run, resumed)
    capsys.readouterr()
    assert main(["distill", "--out", str(resumed), "--resume", "--set", "train.max_steps=8", "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert losses(resumed) == losses(tmp_path / "straight")  # the projections were saved and restored too
    assert report["final_step"] == 8 and losses(resumed)[8] < losses(resumed)[1]
    val = np.fromfile(resumed / "data/val.bin", dtype=np.uint16)
    assert report["val_loss"] == pytest.approx(evaluate_tokens(straight.model, val, seq_len=32)["val_loss"], rel=1e-5)
    assert report["teacher_val_loss"] < report["val_loss"]


def test_the_graded_kd_loss_exercise_catches_a_forgotten_t_squared(tmp_path):
    from tinyslm.grader import grade

    answer = tmp_path / "answers.py"
    answer.write_text('''import numpy as np

def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))

def kd_loss(student_logits, teacher_logits, targets, temperature, alpha):
    ce = -np.take_along_axis(_log_softmax(student_logits), targets[..., None], -1).mean()
    log_p, log_q = _log_softmax(teacher_logits / temperature), _log_softmax(student_logits / temperature)
    return float((1 - alpha) * ce + alpha * (np.exp(log_p) * (log_p - log_q)).sum(-1).mean())  # no T**2
''')
    result = {r.exercise: r for r in grade("09", answer)}["kd_loss"]
    assert not result.passed and "T=2, alpha=0.5 (remember the T² factor)" in result.message
