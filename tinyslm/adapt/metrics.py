"""How good is a classifier: accuracy, macro-F1 and the confusion matrix (and a picture of it).

* **Accuracy** — the share of texts whose predicted label is the true one.
* **Macro-F1** — for each label, F1 = 2 P R / (P + R) with precision P (of the texts predicted as
  this label, how many are) and recall R (of the texts that are this label, how many were found);
  then the plain average over labels. Every label counts the same however many examples it has,
  so a classifier cannot score well by being good at the common labels only. A label that is
  never predicted and never true is left out of the average (its F1 is undefined).
* **Confusion matrix** — ``C[i, j]`` counts texts of true label i predicted as j. The diagonal is
  what was right; a bright off-diagonal cell names two labels the model mixes up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def confusion_matrix(true_ids: np.ndarray, pred_ids: np.ndarray, n_labels: int) -> np.ndarray:
    """(n_labels, n_labels) int64 counts: row = true label, column = predicted label."""
    matrix = np.zeros((n_labels, n_labels), np.int64)
    np.add.at(matrix, (np.asarray(true_ids), np.asarray(pred_ids)), 1)
    return matrix


def classification_scores(true_ids: np.ndarray, pred_ids: np.ndarray, n_labels: int) -> dict:
    """{"accuracy", "macro_f1", "n", "confusion"} of predictions against the truth (label ids)."""
    matrix = confusion_matrix(true_ids, pred_ids, n_labels)
    hits, predicted, actual = np.diag(matrix), matrix.sum(0), matrix.sum(1)
    present = (predicted + actual) > 0
    f1 = 2 * hits[present] / (predicted[present] + actual[present])  # = 2PR / (P + R), with no 0/0
    return {"accuracy": float(hits.sum() / max(matrix.sum(), 1)), "macro_f1": float(f1.mean()) if f1.size else 0.0,
            "n": int(matrix.sum()), "confusion": matrix}


def plot_confusion(matrix: np.ndarray, labels: list[str], path: str | Path, title: str = "") -> Path:
    """Draw the confusion matrix as a heat map with counts into a PNG (rows: true, columns: predicted)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(labels)
    size = 3 + 0.32 * n
    fig = Figure(figsize=(size + 1, size))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="texts")
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    for i, j in zip(*np.nonzero(matrix)):
        ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6,
                color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
