"""Lesson 06, inference and the KV cache (temperature, top-p): references and inputs to try."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 06


def _ref_top_p_filter(logits, p):
    from tinyslm.decode import TopP

    logits = np.asarray(logits, np.float32)
    return np.asarray(TopP(p)(logits, np.zeros(logits.shape, bool)))


def _ref_temperature_softmax(logits, temperature):
    from tinyslm.decode import Temperature

    logits = np.asarray(logits, np.float32)
    import jax

    return np.asarray(jax.nn.softmax(Temperature(temperature)(logits, np.zeros(logits.shape, bool)), axis=-1))


def _cases_top_p_filter() -> list[Case]:
    rng = np.random.default_rng(12)
    peaked = np.log(np.array([[0.5, 0.3, 0.1, 0.06, 0.04]], np.float32))
    return [
        Case("p=0.7 on probabilities [.5 .3 .1 .06 .04]", (peaked, 0.7)),
        Case("p=0.45: the top token alone is enough", (peaked, 0.45)),
        Case("p=0.81: needs three tokens", (peaked, 0.81)),
        Case("p=1.0 keeps everything", (peaked, 1.0)),
        Case("tiny p keeps only the most likely token", (rng.normal(size=(3, 10)).astype(np.float32), 1e-6)),
        Case("unsorted batch, p=0.9", (rng.normal(size=(4, 12)).astype(np.float32) * 2, 0.9)),
    ]


def _cases_temperature_softmax() -> list[Case]:
    rng = np.random.default_rng(13)
    x = rng.normal(size=(2, 6)).astype(np.float32)
    return [
        Case("temperature 1", (x, 1.0)),
        Case("temperature 0.5 (sharper)", (x, 0.5)),
        Case("temperature 2 (flatter)", (x, 2.0)),
        Case("very low temperature, large logits", (10 * x, 0.05)),
    ]


LESSON = Lesson("06", "inference_and_kv_cache", (
    Exercise("temperature_softmax", _ref_temperature_softmax, _cases_temperature_softmax, atol=1e-5),
    Exercise("top_p_filter", _ref_top_p_filter, _cases_top_p_filter, atol=1e-5),
))
