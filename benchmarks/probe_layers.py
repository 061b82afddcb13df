"""Where to read a frozen model: every layer and pooling, scored by paraphrase-aware cross-validation.

This is how the probe's default taps (``last`` at 80% of the depth, ``mean`` at 10%) were chosen,
on the training split only. A random validation split of Symptom2Disease is useless for the choice:
most of its texts are paraphrases of a few seed descriptions per condition, so held-out texts have
near-twins in training and every method scores ~0.97. The test split was cut so that no close
paraphrase crosses it, and this script cuts its validation folds the same way (the data README's
procedure): within each label, texts are linked when their word 3-gram Jaccard is >= 0.3 or their
word-set Jaccard is >= tau, with tau the strictest of 0.35, 0.40, ..., 0.65 that still lets whole
groups fill exactly ``--per-label`` held-out texts (labels that are one big family of paraphrases
fall back to 3-grams alone, then to single texts). On such folds TF-IDF scores ~0.84, close to its
0.81 on test.

    TINYSLM_DATA_DIR=../shared/data python benchmarks/probe_layers.py --run runs/smollm2 --plot probe_layers.png

Prints one JSON object: per tap (``mean@i``, ``last@i``) and for the default pair, the mean and
spread of validation accuracy over the folds, with TF-IDF + logistic regression on the same folds.
``--augment N`` adds N word-dropout copies of each fold's training texts (never of its held-out
ones), as ``tinyslm finetune --augment N`` does; ``--taps`` limits the scoring to a few taps
(reading N+1 times the texts through every layer is slow on a CPU):

    python benchmarks/probe_layers.py --run runs/smollm2 --taps last@24,mean@3 --augment 8

A teaching model, not medical advice.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from tinyslm.adapt.baseline import tfidf_pipeline
from tinyslm.adapt.data import WORD_DROPOUT, near_duplicate_groups, pad_id_of, pad_sequences, word_dropout_copies
from tinyslm.adapt.probe import (
    PROBE_L2, PROMPT_TEMPLATE, ProbeClassifier, default_taps, extract_features, fit_logistic_regression,
)
from tinyslm.data import load_labeled
from tinyslm.train import load_run

WORD_TAUS = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, None)  # None: word 3-grams alone


def paraphrase_aware_folds(examples: list[tuple[str, str]], n_folds: int, per_label: int) -> list[np.ndarray]:
    """``n_folds`` seeded validation index sets, each holding ``per_label`` texts of every label, in whole groups."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, (label, _) in enumerate(examples):
        by_label[label].append(i)
    groupings = {label: [near_duplicate_groups([examples[i][1] for i in ids], word_threshold=tau) for tau in WORD_TAUS]
                 for label, ids in by_label.items()}
    folds = []
    for seed in range(n_folds):
        rng, held = np.random.default_rng(seed), []
        for label in sorted(by_label):
            ids = by_label[label]
            chosen = next((c for groups in groupings[label] if (c := _fill(groups, per_label, rng))), None)
            chosen = chosen or list(rng.choice(len(ids), per_label, replace=False))
            held.extend(ids[i] for i in chosen)
        folds.append(np.array(sorted(held)))
    return folds


def _fill(groups: list[list[int]], target: int, rng: np.random.Generator, tries: int = 50) -> list[int] | None:
    """Whole groups, in random orders, until exactly ``target`` members are chosen (None if no try gets there)."""
    for _ in range(tries):
        chosen: list[int] = []
        for g in rng.permutation(len(groups)):
            if len(chosen) + len(groups[g]) <= target:
                chosen.extend(groups[g])
        if len(chosen) == target:
            return chosen
    return None


def probe_accuracy(features: np.ndarray, labels: np.ndarray, folds: list[np.ndarray], n_labels: int,
                   noisy: np.ndarray | None = None, sources: np.ndarray | None = None) -> list[float]:
    """Validation accuracy per fold of logistic regression on standardised features (the probe's own fit).

    ``noisy`` (M, F): features of augmented copies, ``sources`` (M,) the example each copies; a fold
    trains on the copies of its training examples too.
    """
    scores = []
    for held in folds:
        train = np.setdiff1d(np.arange(len(labels)), held)
        x, y = features[train], labels[train]
        if noisy is not None:
            copies = np.isin(sources, train)
            x, y = np.concatenate([x, noisy[copies]]), np.concatenate([y, labels[sources[copies]]])
        mean, scale = x.mean(0), x.std(0) + 1e-6
        weights, bias, _, _ = fit_logistic_regression((x - mean) / scale, y, n_labels, PROBE_L2)
        predicted = np.asarray(((features[held] - mean) / scale) @ weights + bias).argmax(-1)
        scores.append(float((predicted == labels[held]).mean()))
    return scores


def tfidf_accuracy(examples: list[tuple[str, str]], folds: list[np.ndarray], c: float = 10.0) -> list[float]:
    """The baseline on the same folds, with the ``C`` it picks on finetune's validation split (10)."""
    texts, labels = np.array([t for _, t in examples]), np.array([label for label, _ in examples])
    scores = []
    for held in folds:
        train = np.setdiff1d(np.arange(len(labels)), held)
        model = tfidf_pipeline(c).fit(texts[train], labels[train])
        scores.append(float((model.predict(texts[held]) == labels[held]).mean()))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="the frozen base model, e.g. runs/smollm2")
    parser.add_argument("--data", default="symptom2disease")
    parser.add_argument("--template", default=PROMPT_TEMPLATE, help="{text} marks where each text goes")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--per-label", type=int, default=7, help="held-out texts per label and fold")
    parser.add_argument("--taps", help="score only these taps (and the default pair), e.g. last@24,mean@3")
    parser.add_argument("--augment", type=int, default=0, help="word-dropout copies of each training text")
    parser.add_argument("--word-dropout", type=float, default=WORD_DROPOUT, help="chance a copy drops each word")
    parser.add_argument("--plot", help="write accuracy against layer to this PNG (every tap scored)")
    args = parser.parse_args()
    if args.plot and args.taps:
        parser.error("--plot draws every layer: leave out --taps")

    run = load_run(args.run)
    n_layers = run.config.model.n_layers
    examples = load_labeled(args.data, "train")
    names = sorted({label for label, _ in examples})
    labels = np.array([names.index(label) for label, _ in examples])
    pair = default_taps(n_layers)
    taps = (args.taps.split(",") if args.taps else
            [f"{how}@{layer}" for layer in range(n_layers + 1) for how in ("mean", "last")])
    read = list(dict.fromkeys([*taps, *pair]))
    probe = ProbeClassifier(run.model, len(names), tuple(read), rngs=nnx.Rngs(0))
    noisy_examples = word_dropout_copies(examples, args.augment, args.word_dropout, seed=0)
    columns, noisy_columns = (_columns(run, probe, part, args.template, read) if part else None
                              for part in (examples, noisy_examples))
    sources = np.repeat(np.arange(len(examples)), args.augment)
    folds = paraphrase_aware_folds(examples, args.folds, args.per_label)

    def score(chosen: list[str]) -> list[float]:
        noisy = None if noisy_columns is None else np.concatenate([noisy_columns[t] for t in chosen], 1)
        return probe_accuracy(np.concatenate([columns[t] for t in chosen], 1), labels, folds, len(names), noisy, sources)

    results = {tap: score([tap]) for tap in tqdm(taps, desc="folds")}
    results["+".join(pair)] = score(pair)
    results["tfidf"] = tfidf_accuracy(examples, folds)
    summary = {name: {"mean": round(float(np.mean(s)), 4), "std": round(float(np.std(s)), 4)} for name, s in results.items()}
    print(json.dumps({"run": args.run, "template": args.template, "folds": args.folds, "per_label": args.per_label,
                      "l2": PROBE_L2, "augment": args.augment, "word_dropout": args.word_dropout, "accuracy": summary,
                      "notice": "teaching model, not medical advice"}))
    if args.plot:
        _plot(summary, n_layers, "+".join(pair), args.plot)


def prompted_tokens(tokenizer, examples: list[tuple[str, str]], template: str) -> tuple[np.ndarray, np.ndarray]:
    """Each text wrapped in ``template`` and encoded: tokens (N, longest) padded at the end, lengths (N,)."""
    ids = [tokenizer.encode(template.format(text=text)) for _, text in examples]
    return pad_sequences(ids, max(map(len, ids)), pad_id_of(tokenizer))


def _columns(run, probe: ProbeClassifier, examples: list[tuple[str, str]], template: str, taps: list[str]) -> dict:
    """Each tap's pooled hidden states of the templated texts, one (N, d_model) array per tap."""
    tokens, lengths = prompted_tokens(run.tokenizer, examples, template)
    features = extract_features(probe, tokens, lengths, progress=lambda b: tqdm(b, desc="hidden states", unit="batch"))
    width = run.config.model.d_model
    return {tap: features[:, i * width : (i + 1) * width] for i, tap in enumerate(taps)}


def _plot(summary: dict, n_layers: int, pair: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    layers = np.arange(n_layers + 1)
    for how in ("mean", "last"):
        ax.plot(layers, [summary[f"{how}@{i}"]["mean"] for i in layers], marker=".", label=f"{how} pooling")
    ax.axhline(summary["tfidf"]["mean"], color="grey", ls="--", label="TF-IDF + logistic regression")
    ax.axhline(summary[pair]["mean"], color="black", ls=":", label=pair)
    ax.set(xlabel="layer (0 = embeddings)", ylabel="validation accuracy (paraphrase-aware folds)",
           title="A linear probe at every layer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
