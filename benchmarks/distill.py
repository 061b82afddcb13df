"""Distillation on TinyStories: does a small student learn more from a teacher than from the text alone?

Issue 9's two bars, measured on the TinyStories sample with the teacher's 2048-piece sentencepiece BPE:

1. **Distilled vs from scratch.** A student with 1/4 of the teacher's non-embedding parameters
   (``configs/tinystories_student.yaml``, 4 x 96, vs ``configs/tinystories_teacher.yaml``, 4 x 192)
   is trained twice per seed for the same number of tokens: on the text alone, and on the text and
   the teacher's soft targets (T and alpha fixed in advance, not tuned). Same initial weights and
   same batches per seed; the only difference is the loss.
2. **Prune, then recover** (Minitron, Muralidharan / Sreenivas et al. 2024, arXiv:2407.14679). The
   teacher is structurally pruned to about the student's size (half of its heads and MLP neurons,
   half of its blocks, by activation importance: :func:`tinyslm.compress.structured.prune_structured`)
   and recovered for the same number of tokens by plain fine-tuning and by distillation from the
   unpruned teacher.

Every figure is the next-token loss on every token of the validation split (``evaluate_tokens``),
never on training data. ``--ablation`` adds single-seed variants (temperature, alpha, reverse KL,
feature matching) for the lesson; they are reported separately and were not used to pick the
headline settings.

    TINYSLM_DATA_DIR=../shared/data python benchmarks/distill.py --out runs/bench-distill
    TINYSLM_DATA_DIR=../shared/data python benchmarks/distill.py --smoke --out /tmp/distill-smoke   # ~minutes, checks it runs

Prints one JSON object (``variants``: one entry per trained model; ``summary``: the bars).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import tinyslm  # noqa: F401  (sets the XLA:CPU defaults before JAX starts)
from tinyslm.compress.calibrate import calibration_windows
from tinyslm.compress.distill import DistillConfig, distill
from tinyslm.compress.structured import prune_structured
from tinyslm.config import load_config
from tinyslm.data import load_tokens
from tinyslm.model import param_count
from tinyslm.train import TrainingTask, load_run, save_run, train
from tinyslm.train.checkpoint import CONFIG_FILE, DATA_DIR
from tinyslm.train.evaluate import evaluate_tokens

TEACHER_CONFIG, STUDENT_CONFIG = "configs/tinystories_teacher.yaml", "configs/tinystories_student.yaml"
SMOKE = ["train.max_steps=30", "train.eval_interval=30", "train.ckpt_interval=30", "train.seq_len=64",
         "train.batch_size=8", "train.warmup_steps=5", "train.eval_batches=2", "train.samples=0"]
ABLATIONS = {  # name -> distillation settings, each on the first seed only
    "T=1": DistillConfig(temperature=1.0, alpha=0.5),
    "T=4": DistillConfig(temperature=4.0, alpha=0.5),
    "alpha=0.9": DistillConfig(temperature=2.0, alpha=0.9),
    "reverse KL": DistillConfig(temperature=2.0, alpha=0.5, divergence="reverse"),
    "features (cosine, blocks 1:1 3:3)": DistillConfig(temperature=2.0, alpha=0.5, features=((1, 1), (3, 3)),
                                                       feature_loss="cosine", feature_weight=1.0),
}


def non_embedding_params(model_config) -> int:
    return param_count(model_config) - model_config.vocab_size * model_config.d_model


def val_loss(run_dir: Path, val_tokens: np.ndarray, seq_len: int) -> float:
    """The run's next-token loss on every validation token."""
    return evaluate_tokens(load_run(run_dir).model, val_tokens, seq_len=seq_len)["val_loss"]


def student_overrides(smoke: list[str], steps: int | None, seed: int) -> list[str]:
    steps_override = [f"train.max_steps={steps}"] if steps and not smoke else []
    return [*smoke, *steps_override, f"train.seed={seed}", "train.samples=0"]


def mean_std(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": [round(v, 4) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-distill", help="folder for every run (must not hold them yet)")
    parser.add_argument("--teacher", help="reuse this trained teacher run instead of training one")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--student-steps", type=int, help="default: the student config's train.max_steps")
    parser.add_argument("--recovery-steps", type=int, default=300, help="fine-tuning / distillation after pruning")
    parser.add_argument("--recovery-lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--parts", nargs="+", choices=("students", "prune", "ablation"), default=["students", "prune"],
                        help="students: bar 1; prune: bar 2; ablation: single-seed variants of the settings")
    parser.add_argument("--smoke", action="store_true", help="tiny steps and windows: checks the script runs")
    args = parser.parse_args()
    out, smoke = Path(args.out), SMOKE if args.smoke else []
    settings = DistillConfig(temperature=args.temperature, alpha=args.alpha)
    start = time.perf_counter()

    teacher = Path(args.teacher) if args.teacher else out / "teacher"
    if not args.teacher:
        train(load_config(TEACHER_CONFIG, smoke), teacher, progress=False)
    teacher_run = load_run(teacher)
    seq_len = teacher_run.config.train.seq_len
    val_tokens = load_tokens(teacher / DATA_DIR, "val")
    variants = [{"name": "teacher", "val_loss": val_loss(teacher, val_tokens, seq_len),
                 "non_embedding_params": non_embedding_params(teacher_run.config.model)}]

    def record(name: str, seed: int, run_dir: Path, **extra) -> float:
        loss = val_loss(run_dir, val_tokens, seq_len)
        config = load_config(run_dir / CONFIG_FILE)
        variants.append({"name": name, "seed": seed, "val_loss": loss, "tokens": config.train.max_steps
                         * config.train.batch_size * config.train.seq_len,
                         "non_embedding_params": non_embedding_params(config.model), **extra})
        print(f"{name:<40} seed {seed}: val loss {loss:.4f}", flush=True)
        return loss

    # ---- bar 1: the same student, from scratch and distilled, same tokens
    scratch, distilled, finetuned, recovered = [], [], [], []
    for seed in args.seeds if "students" in args.parts else []:
        config = load_config(STUDENT_CONFIG, student_overrides(smoke, args.student_steps, seed))
        train(config, out / f"scratch-{seed}", progress=False)
        scratch.append(record("student from scratch", seed, out / f"scratch-{seed}"))
        distill(config, teacher, out / f"distilled-{seed}", settings, progress=False)
        distilled.append(record(f"student distilled (T={settings.temperature}, alpha={settings.alpha})", seed,
                                out / f"distilled-{seed}"))
    if "ablation" in args.parts:
        config = load_config(STUDENT_CONFIG, student_overrides(smoke, args.student_steps, args.seeds[0]))
        for i, (name, variant) in enumerate(ABLATIONS.items()):
            distill(config, teacher, out / f"ablation-{i}", variant, progress=False)
            record(f"ablation: {name}", args.seeds[0], out / f"ablation-{i}", ablation=True)

    if "prune" in args.parts:
        finetuned, recovered = prune_and_recover(args, out, teacher, val_tokens, smoke, settings, record, variants)

    student_steps = load_config(STUDENT_CONFIG, student_overrides(smoke, args.student_steps, 0)).train.max_steps
    summary = {
        "student_over_teacher_non_embedding": round(non_embedding_params(load_config(STUDENT_CONFIG).model)
                                                    / non_embedding_params(teacher_run.config.model), 4),
        "settings": {"temperature": settings.temperature, "alpha": settings.alpha, "seeds": args.seeds,
                     "student_steps": student_steps, "recovery_steps": args.recovery_steps, "smoke": args.smoke},
    }
    for name, (baseline, better) in {"distillation": (scratch, distilled), "recovery": (finetuned, recovered)}.items():
        if baseline:
            gains = [b - d for b, d in zip(baseline, better)]  # paired by seed: same start, same batches
            summary.update({f"{name}_baseline_val_loss": mean_std(baseline), f"{name}_val_loss": mean_std(better),
                            f"{name}_gain_nats": mean_std(gains), f"{name}_wins_every_seed": all(g > 0 for g in gains)})
    summary["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps({"summary": summary, "variants": variants}))


def prune_and_recover(args, out: Path, teacher: Path, val_tokens, smoke: list[str], settings: DistillConfig, record,
                      variants: list) -> tuple[list[float], list[float]]:
    """Bar 2: prune the teacher to about the student's size, then recover it by fine-tuning and by distillation."""
    teacher_run = load_run(teacher)
    seq_len = teacher_run.config.train.seq_len
    calibration = calibration_windows(teacher, n_windows=8 if smoke else 128, seq_len=seq_len)
    pruned_model, pruned_model_config = prune_structured(teacher_run.model, calibration, heads=0.5, neurons=0.5,
                                                         layers=teacher_run.config.model.n_layers // 2)
    pruned = out / "pruned"
    save_run(pruned, replace(teacher_run.config, model=pruned_model_config), pruned_model, teacher_run.tokenizer)
    variants.append({"name": "teacher pruned (no recovery)", "val_loss": val_loss(pruned, val_tokens, seq_len),
                     "non_embedding_params": non_embedding_params(pruned_model_config)})
    finetuned, recovered = [], []
    for seed in args.seeds:
        config = load_config(pruned / CONFIG_FILE, [*smoke, f"train.max_steps={30 if smoke else args.recovery_steps}",
                                                    f"train.seed={seed}", f"train.lr={args.recovery_lr}",
                                                    "train.warmup_steps=5" if smoke else "train.warmup_steps=50",
                                                    "train.samples=0"])
        plain = TrainingTask(init_model=lambda c: load_run(pruned).model, tokenizer=teacher_run.tokenizer)
        train(config, out / f"pruned-finetuned-{seed}", task=plain, progress=False)
        finetuned.append(record("pruned + fine-tuned", seed, out / f"pruned-finetuned-{seed}"))
        distill(config, teacher, out / f"pruned-distilled-{seed}", settings, student_from=pruned, progress=False)
        recovered.append(record("pruned + distilled", seed, out / f"pruned-distilled-{seed}"))

    return finetuned, recovered


if __name__ == "__main__":
    main()
