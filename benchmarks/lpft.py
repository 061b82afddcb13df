"""Linear probing, then fine-tuning (LP-FT): does fine-tuning from the probe's head generalise better?

Kumar et al. 2022 ("Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution") show that fine-tuning from a random head first pushes large gradients through
the pretrained features while the head is still wrong, and distorts them; fitting the head first
(the probe) and only then fine-tuning everything with a small learning rate keeps the features and
helps most where the test data is shifted, as Symptom2Disease's paraphrase-separated test split is.

This script scores LP, LP-FT and plain FT (random head) on the same paraphrase-aware folds as
``probe_layers.py``, training split only:

    TINYSLM_DATA_DIR=../shared/data python benchmarks/lpft.py --run runs/smollm2

Every configuration starts from the same probe per fold (taps, template and L2 as ``tinyslm
finetune --method probe``) and trains every weight the probe reads with tinyslm's own optimizer and
train step (AdamW, betas 0.9/0.99, weight decay 0.01 on matrices, clipping at norm 1), batch 16,
10% warmup then cosine to 0 over ``--epochs``, scoring the held-out fold
after each epoch. Plain FT does the same from a fresh random head. On SmolLM2 that is about 3,300
steps: 4 minutes on one H100, most of a day on a 2-core CPU (``--max-folds 1 --epochs 1`` there).
Prints one JSON line per score, then a summary. A teaching model, not medical advice.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from probe_layers import paraphrase_aware_folds, prompted_tokens, tfidf_accuracy
from tinyslm.adapt.data import map_fixed_batches
from tinyslm.adapt.head import classification_loss
from tinyslm.adapt.probe import PROMPT_TEMPLATE, ProbeClassifier, default_taps, fit_probe
from tinyslm.config import TrainConfig
from tinyslm.data import load_labeled
from tinyslm.train import load_run
from tinyslm.train.optim import make_optimizer
from tinyslm.train.step import make_train_step


@partial(jax.jit, static_argnums=0)
def _logits(graphdef, params, frozen, tokens, lengths):
    return nnx.merge(graphdef, params, frozen)(tokens, lengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="the frozen base model, e.g. runs/smollm2")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--per-label", type=int, default=7, help="held-out texts per label and fold")
    parser.add_argument("--lrs", default="3e-5,1e-4", help="LP-FT's peak learning rates")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--random-head-lr", type=float, default=3e-5, help="plain FT's peak lr (0: skip plain FT)")
    parser.add_argument("--max-folds", type=int, help="score only the first folds (a quick look on a CPU)")
    args = parser.parse_args()

    run = load_run(args.run)
    examples = load_labeled("symptom2disease", "train")
    names = sorted({label for label, _ in examples})
    labels = np.array([names.index(label) for label, _ in examples], np.int32)
    tokens, lengths = prompted_tokens(run.tokenizer, examples, PROMPT_TEMPLATE)
    folds = paraphrase_aware_folds(examples, args.folds, args.per_label)[: args.max_folds]
    base_weights = nnx.state(run.model)
    taps = default_taps(run.config.model.n_layers)
    model = ProbeClassifier(run.model, len(names), taps, rngs=nnx.Rngs(0))
    graphdef, params, _ = nnx.split(model, nnx.Param, ...)  # the rest (feature statistics) stays fixed
    steps_per_epoch = (len(labels) - len(folds[0])) // args.batch
    total = steps_per_epoch * args.epochs
    configs = [("lpft", float(lr)) for lr in args.lrs.split(",")] + [("ft", args.random_head_lr)] * (args.random_head_lr > 0)
    optimizers, steps = {}, {}
    for _, lr in configs:  # one optimizer and one compiled step per learning rate, shared by the folds
        cfg = TrainConfig(lr=lr, min_lr=0.0, max_steps=total, warmup_steps=total // 10, weight_decay=0.01)
        optimizers[lr] = make_optimizer(cfg, params)
        steps[lr] = make_train_step(graphdef, optimizers[lr], False, classification_loss)
    results: dict[str, list] = {"tfidf": tfidf_accuracy(examples, folds)}
    print(json.dumps({"tfidf": results["tfidf"]}), flush=True)

    def accuracy(params, frozen, held):
        out = map_fixed_batches(partial(_logits, graphdef, params, frozen), (tokens[held], lengths[held]), args.batch)
        return float((out.argmax(-1) == labels[held]).mean())

    for k, held in enumerate(folds):
        train = np.setdiff1d(np.arange(len(labels)), held)
        nnx.update(model.lm, jax.tree.map(jnp.copy, base_weights))  # every fold starts from the base model
        fit_probe(model, tokens[train], lengths[train], labels[train])
        _, probe_params, frozen = nnx.split(model, nnx.Param, ...)
        results.setdefault("lp", []).append(accuracy(probe_params, frozen, held))
        print(json.dumps({"fold": k, "lp": results["lp"][-1]}), flush=True)
        for name, lr in configs:
            params = jax.tree.map(jnp.copy, probe_params)
            if name == "ft":  # the same standardised features, a fresh random head
                params["label_head"] = nnx.state(ProbeClassifier(run.model, len(names), taps, rngs=nnx.Rngs(k)).label_head)
            opt_state, rng, start = optimizers[lr].init(params), np.random.default_rng(k), time.perf_counter()
            for epoch in range(args.epochs):
                order = rng.permutation(train)
                for s in range(steps_per_epoch):
                    rows = order[s * args.batch : (s + 1) * args.batch]
                    batch = {"tokens": tokens[rows][None], "lengths": lengths[rows][None], "labels": labels[rows][None],
                             "weight": np.ones((1, args.batch), np.float32)}
                    params, opt_state, metrics = steps[lr](params, opt_state, batch, jax.random.key(0), frozen)
                key = f"{name}@{lr:g}/epoch{epoch + 1}"
                results.setdefault(key, []).append(accuracy(params, frozen, held))
                print(json.dumps({"fold": k, key: results[key][-1], "last_loss": float(metrics["loss"]),
                                  "s": round(time.perf_counter() - start, 1)}), flush=True)
    summary = {key: {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4), "folds": v}
               for key, v in results.items()}
    print(json.dumps({"run": args.run, "taps": taps, "epochs": args.epochs, "batch": args.batch, "summary": summary,
                      "notice": "teaching model, not medical advice"}))


if __name__ == "__main__":
    main()
