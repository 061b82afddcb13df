"""The optimizer: AdamW with a warmup-then-cosine learning rate, clipping, and selective weight decay.

* AdamW (Loshchilov & Hutter 2019, arXiv:1711.05101): Adam with weight decay applied directly to
  the weights rather than through the gradient.
* Weight decay pulls matrices towards zero. It is *not* applied to norms, biases or embeddings:
  shrinking a norm's scale or a bias does not regularise anything useful, and shrinking the
  embedding rows of rare tokens only makes them worse.
* The learning rate rises linearly for ``warmup_steps`` (Adam's statistics are noisy at first),
  then follows a cosine down to ``min_lr`` at ``decay_steps``, and stays there.
* Gradients are clipped to a global norm (Pascanu et al. 2013), which tames the occasional spike.
"""

from __future__ import annotations

import jax
import optax

from tinyslm.config import TrainConfig

NO_DECAY_MODULES = ("embed", "pos_embed")


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    """step -> learning rate: linear warmup from 0 to ``lr``, cosine decay to ``min_lr``, then flat."""
    decay_steps = cfg.decay_steps or cfg.max_steps
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        decay_steps=max(decay_steps, cfg.warmup_steps + 1),
        end_value=cfg.min_lr,
    )


def decay_mask(params) -> object:
    """A pytree of booleans: True for the weight matrices that get weight decay."""

    def decays(path, leaf) -> bool:
        names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
        return leaf.ndim >= 2 and not names & set(NO_DECAY_MODULES)

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(cfg: TrainConfig, params) -> optax.GradientTransformation:
    """Global-norm clipping followed by AdamW on the schedule, decaying only :func:`decay_mask`."""
    steps = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip > 0 else []
    steps.append(
        optax.adamw(
            learning_rate=learning_rate_schedule(cfg),
            b1=cfg.beta1,
            b2=cfg.beta2,
            weight_decay=cfg.weight_decay,
            mask=decay_mask(params),
        )
    )
    return optax.chain(*steps)
