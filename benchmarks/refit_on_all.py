"""Choose by cross-validation, then refit on every training text: the probe and TF-IDF treated alike.

``tinyslm finetune`` holds out 15% of the training texts so that a training loop has something to
stop and compare on. The probe has no loop: its taps, prompt, L2 strength and augmentation were
chosen on paraphrase-aware folds of the whole training split (``probe_layers.py``), so the
hold-out only takes texts away from its fit. This script gives the TF-IDF baseline the same
treatment, so the comparison stays fair: its ``C`` is chosen from the baseline's grid by mean
accuracy on the same folds, the pipeline is refitted on all training texts, and both classifiers
are scored once on the test split.

    tinyslm finetune --run runs/smollm2 --method probe --augment 8 --val-fraction 0 --out runs/s2-probe-aug-all
    TINYSLM_DATA_DIR=../shared/data python benchmarks/refit_on_all.py --probe-run runs/s2-probe-aug-all

Prints one JSON object. A teaching model, not medical advice.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from probe_layers import paraphrase_aware_folds, tfidf_accuracy
from tinyslm.adapt import NOTICE, load_classifier
from tinyslm.adapt.baseline import C_GRID, TfidfClassifier, tfidf_pipeline
from tinyslm.data import load_labeled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe-run", required=True, help="a probe fitted with --val-fraction 0")
    parser.add_argument("--data", default="symptom2disease")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--per-label", type=int, default=7, help="held-out texts per label and fold")
    args = parser.parse_args()

    probe = load_classifier(args.probe_run)
    if probe.spec.method != "probe" or probe.spec.val_fraction != 0:
        parser.error(f"{args.probe_run} is not a probe fitted on every training text (--method probe --val-fraction 0)")
    examples, test = load_labeled(args.data, "train"), load_labeled(args.data, "test")
    folds = paraphrase_aware_folds(examples, args.folds, args.per_label)
    cv = {c: float(np.mean(tfidf_accuracy(examples, folds, c))) for c in C_GRID}
    best_c = max(cv, key=cv.get)
    pipeline = tfidf_pipeline(best_c).fit([text for _, text in examples], [label for label, _ in examples])
    rows = {"tfidf": TfidfClassifier(pipeline, list(pipeline.classes_), best_c).evaluate(test),
            "probe": probe.evaluate(test)}
    print(json.dumps({
        "train_texts": len(examples), "test_texts": len(test), "tfidf_cv_accuracy_by_c": cv, "tfidf_c": best_c,
        "probe": {"run": args.probe_run, "taps": probe.spec.taps, "augment": probe.spec.augment},
        "test": {name: {key: round(scores[key], 4) for key in ("accuracy", "macro_f1")} for name, scores in rows.items()},
        "notice": NOTICE}))


if __name__ == "__main__":
    main()
