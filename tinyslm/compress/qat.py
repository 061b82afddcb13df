"""Quantization-aware training (QAT): let the model adapt to its own rounding before it is rounded.

Post-training quantization rounds weights the model never saw during training. QAT continues
training a little with the rounding *in the forward pass*: every quantizable weight is replaced by
``fake_quantize(w)`` (its quantized-then-dequantized value), so the loss is that of the quantized
model, while the straight-through estimator lets the gradient update the float weights underneath
(Jacob et al. 2017, arXiv:1712.05877; for LLMs, Liu et al. 2023, "LLM-QAT", arXiv:2305.17888).
After training, :func:`~tinyslm.compress.quantized.quantize_model` rounds the float weights with
the very same function, so the exported int8/int4 model computes what the QAT forward computed.

QAT runs on tinyslm's one training loop (:func:`tinyslm.train.train`) through a
:class:`~tinyslm.train.TrainingTask`: start from the trained model, keep its tokenizer, and swap
the loss for the fake-quantized one. The fair comparison spends the same steps on ordinary float
fine-tuning followed by PTQ (:func:`finetune`): only then is any gain due to QAT rather than to
extra training.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from tinyslm.compress.quantized import fake_quantized_model
from tinyslm.config import DataConfig, QuantizationConfig, RunConfig
from tinyslm.train import Run, TrainingTask, language_model_loss, train
from tinyslm.train.step import LossFn


def qat_loss(config: QuantizationConfig) -> LossFn:
    """The language-model loss of the fake-quantized model (straight-through gradients)."""

    def loss(model: nnx.Module, windows, dropout_key=None):
        return language_model_loss(fake_quantized_model(model, config), windows, dropout_key)

    return loss


def continued_training_config(run: Run, steps: int, lr: float, data: DataConfig | None = None) -> RunConfig:
    """The run's config for ``steps`` more steps at peak ``lr`` (10% warmup, cosine to lr/10).

    Evaluation happens once, at the end; no samples are printed. ``data`` replaces the run's own
    data (an imported model has none of its own).
    """
    tc = run.config.train
    train_config = replace(tc, max_steps=steps, lr=lr, min_lr=lr / 10, warmup_steps=steps // 10, decay_steps=steps,
                           eval_interval=steps, ckpt_interval=steps, log_interval=min(tc.log_interval, steps),
                           samples=0)
    return replace(run.config, train=train_config, data=data or run.config.data, quantization=None)


def _copy(model: nnx.Module) -> nnx.Module:
    """A copy with its own arrays: the trainer donates (frees) the arrays it starts from."""
    graphdef, state = nnx.split(model)
    return nnx.merge(graphdef, jax.tree.map(jnp.copy, state))


def _continue(run: Run, out: str | Path, steps: int, lr: float, loss: LossFn, data: DataConfig | None,
              progress: bool) -> nnx.Module:
    task = TrainingTask(init_model=lambda config: _copy(run.model), tokenizer=run.tokenizer, loss=loss)
    return train(continued_training_config(run, steps, lr, data), out, progress=progress, task=task).model


def quantization_aware_training(run: Run, config: QuantizationConfig, out: str | Path, steps: int,
                                lr: float = 1e-4, data: DataConfig | None = None, progress: bool = True) -> nnx.Module:
    """Train ``run.model`` for ``steps`` with fake-quantized weights into the run directory ``out``.

    Returns the trained *float* model (the latent weights); pass it to ``quantize_model(model,
    config)`` for the real quantized model, whose forward equals the fake-quantized one.
    """
    return _continue(run, out, steps, lr, qat_loss(config), data, progress)


def finetune(run: Run, out: str | Path, steps: int, lr: float = 1e-4, data: DataConfig | None = None,
             progress: bool = True) -> nnx.Module:
    """The control for QAT: the same steps, learning rate and data, with the ordinary float loss."""
    return _continue(run, out, steps, lr, language_model_loss, data, progress)
