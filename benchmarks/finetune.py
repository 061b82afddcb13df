"""Fine-tuning strategies side by side on Symptom2Disease, against the TF-IDF + logistic regression baseline.

Every classifier is fine-tuned from the same base run on the same training examples (the same
stratified, near-duplicate-aware validation hold-out) and scored once on the test split, which
nothing here tunes on. Prints one JSON object: a row per variant under ``variants`` with test
accuracy and macro-F1, validation accuracy, trainable and total parameters, fine-tuning wall time
and predictions per second.

    TINYSLM_DATA_DIR=../shared/data .venv/bin/python benchmarks/finetune.py --base runs/default
    TINYSLM_DATA_DIR=../shared/data .venv/bin/python benchmarks/finetune.py --base runs/default \\
        --variants full lora8 --set train.max_steps=20        # a quick check that it runs

Without ``--base`` it first trains the default config (about 3 minutes on a quiet 2-core CPU).
A teaching model, not medical advice.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from tinyslm.adapt import NOTICE, LoRAConfig, finetune, fit_tfidf, split_examples
from tinyslm.config import load_config
from tinyslm.data import load_labeled
from tinyslm.train import load_run, train

# name -> finetune() keyword arguments
VARIANTS = {
    "full": {},
    "full_last": dict(pooling="last"),
    "last2": dict(train_layers=2),
    "head_only": dict(train_layers=0),
    "probe": dict(method="probe"),
    "lora8": dict(lora=LoRAConfig(rank=8)),
    "lora8_all": dict(lora=LoRAConfig(rank=8, targets=("q", "k", "v", "o", "gate", "up", "down"))),
    "generative_full": dict(method="generative"),
    "generative_lora8": dict(method="generative", lora=LoRAConfig(rank=8)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="base run (a trained LM); default: train configs/default.yaml first")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--data", default="symptom2disease")
    parser.add_argument("--out", default="runs/bench-finetune", help="folder for the runs (must not hold them yet)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fine-tuning overrides")
    args = parser.parse_args()

    out = Path(args.out)
    base = Path(args.base) if args.base else out / "base"
    if not args.base:
        train(load_config("configs/default.yaml", ["train.samples=0"]), base, progress=False)
    seed = load_run(base).config.train.seed
    train_ex, val_ex = split_examples(load_labeled(args.data, "train"), 0.15, seed=seed)  # finetune's own split
    test_ex = load_labeled(args.data, "test")

    rows = []
    start = time.perf_counter()
    tfidf = fit_tfidf(train_ex, val_ex)
    fit_s = time.perf_counter() - start
    test, val = tfidf.evaluate(test_ex), tfidf.evaluate(val_ex)
    rows.append({"name": "tfidf_logreg", "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
                 "val_accuracy": val["accuracy"], "trainable_params": None, "total_params": None,
                 "train_wall_s": round(fit_s, 2), "C": tfidf.c})
    for name in args.variants:
        loop = {} if VARIANTS[name].get("method") == "probe" else {"overrides": args.set}  # a probe has no loop
        result = finetune(base, out / name, args.data, progress=False, **loop, **VARIANTS[name])
        classifier = result.classifier
        classifier.predict_proba([text for _, text in test_ex[:32]])  # compile outside the timing
        start = time.perf_counter()
        test = classifier.evaluate(test_ex)
        predict_s = time.perf_counter() - start
        spec = classifier.spec
        rows.append({"name": name, "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"],
                     "val_accuracy": result.val["accuracy"], "trainable_params": spec.trainable_params,
                     "total_params": spec.total_params, "train_wall_s": round(result.train.wall_s, 2),
                     "predictions_per_s": round(len(test_ex) / predict_s, 1)})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"benchmark": "finetune", "data": args.data, "base": str(base), "n_test": len(test_ex),
                      "overrides": args.set, "machine": platform.processor() or platform.machine(),
                      "notice": NOTICE, "variants": rows}))


if __name__ == "__main__":
    main()
