"""Lesson 04, the transformer (norms, SwiGLU, parameter count): references and inputs to try."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 04


def _ref_rms_norm(x, scale, eps=1e-5):
    from tinyslm.model import rms_norm

    return np.asarray(rms_norm(np.asarray(x), np.asarray(scale), eps))


def _ref_layer_norm(x, scale, bias, eps=1e-5):
    from tinyslm.model import layer_norm

    return np.asarray(layer_norm(np.asarray(x), np.asarray(scale), None if bias is None else np.asarray(bias), eps))


def _ref_swiglu(x, w_gate, w_up, w_down):
    from flax import nnx

    from tinyslm.config import ModelConfig
    from tinyslm.model.block import MLP

    d_model, d_ff = w_gate.shape
    mlp = MLP(ModelConfig(preset="llama", d_model=d_model, d_ff=d_ff, n_heads=1), rngs=nnx.Rngs(0))
    mlp.gate.kernel = nnx.Param(np.asarray(w_gate))
    mlp.up.kernel = nnx.Param(np.asarray(w_up))
    mlp.down.kernel = nnx.Param(np.asarray(w_down))
    return np.asarray(mlp(np.asarray(x)))


def _ref_llama_param_count(vocab_size, d_model, n_layers, n_heads, n_kv_heads, d_ff, tie_embeddings=True):
    from tinyslm.config import ModelConfig
    from tinyslm.model import param_count

    return param_count(ModelConfig(
        preset="llama", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=n_kv_heads, d_ff=d_ff, tie_embeddings=tie_embeddings,
    ))


def _cases_rms_norm() -> list[Case]:
    rng = np.random.default_rng(8)
    return [
        Case("a vector, scale 1", (np.array([3.0, 4.0], np.float32), np.ones(2, np.float32))),
        Case("(B, T, D) with a learned scale", (rng.normal(size=(2, 3, 8)).astype(np.float32),
                                                rng.normal(size=8).astype(np.float32))),
        Case("large values", (1e3 * rng.normal(size=(4, 16)).astype(np.float32), np.ones(16, np.float32))),
        Case("all zeros (eps keeps it finite)", (np.zeros((2, 4), np.float32), np.ones(4, np.float32))),
        Case("eps=0.1", (rng.normal(size=(3, 4)).astype(np.float32), np.ones(4, np.float32)), {"eps": 0.1}),
    ]


def _cases_layer_norm() -> list[Case]:
    rng = np.random.default_rng(9)
    d = 8
    return [
        Case("a vector, no bias", (np.array([1.0, 2.0, 3.0, 6.0], np.float32), np.ones(4, np.float32), None)),
        Case("(B, T, D) with scale and bias", (rng.normal(size=(2, 3, d)).astype(np.float32),
                                               rng.normal(size=d).astype(np.float32), rng.normal(size=d).astype(np.float32))),
        Case("shifted input (mean 100)", (100 + rng.normal(size=(3, d)).astype(np.float32), np.ones(d, np.float32),
                                           np.zeros(d, np.float32))),
        Case("constant rows (eps keeps it finite)", (np.full((2, 4), 5.0, np.float32), np.ones(4, np.float32), None)),
    ]


def _cases_swiglu() -> list[Case]:
    rng = np.random.default_rng(10)

    def case(label, lead, d, f):
        return Case(label, (rng.normal(size=(*lead, d)).astype(np.float32), *(
            (rng.normal(size=shape) / np.sqrt(shape[0])).astype(np.float32) for shape in ((d, f), (d, f), (f, d)))))

    return [case("x (3, 4), d_ff=8", (3,), 4, 8), case("x (2, 5, 8), d_ff=16", (2, 5), 8, 16), case("one token", (1,), 6, 6)]


def _cases_llama_param_count() -> list[Case]:
    return [
        Case("a tiny model", (512, 128, 4, 4, 4, 352)),
        Case("grouped-query attention", (1000, 64, 2, 8, 2, 160)),
        Case("untied output head", (1000, 64, 2, 4, 4, 160), {"tie_embeddings": False}),
        Case("SmolLM2-135M", (49152, 576, 30, 9, 3, 1536)),
        Case("Llama 3.2 1B", (128256, 2048, 16, 32, 8, 8192)),
    ]


LESSON = Lesson("04", "the_transformer", (
    Exercise("rms_norm", _ref_rms_norm, _cases_rms_norm, atol=1e-4),
    Exercise("layer_norm", _ref_layer_norm, _cases_layer_norm, atol=1e-4),
    Exercise("swiglu_mlp", _ref_swiglu, _cases_swiglu, atol=1e-4),
    Exercise("llama_param_count", _ref_llama_param_count, _cases_llama_param_count),
))
