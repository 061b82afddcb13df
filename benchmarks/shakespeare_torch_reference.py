"""nanoGPT's Shakespeare CPU recipe in PyTorch, on tinyslm's data and validation windows: the reference for the val-loss bar.

The bar for ``configs/shakespeare_char.yaml`` (val loss <= 1.90 after 2000 steps) comes from one
run of nanoGPT (~1.88 in its README, 1.886 measured here). One run says little about a recipe
whose val loss moves by ~0.01 from seed to seed. This script trains the same recipe in PyTorch,
written the way nanoGPT writes it, so several seeds of the reference can be set beside several
seeds of tinyslm:

* the model: GPT-2 without biases, 4 layers x 4 heads x 128, context 64, exact (erf) GELU, tied
  embeddings, N(0, 0.02) init with the residual projections scaled by 1/sqrt(2 * n_layers);
* the training: batch 12 of random windows, AdamW (betas 0.9/0.99, weight decay 0.1 on every 2-D
  tensor, embeddings included), lr 1e-3 with 100 warmup steps and a cosine to 1e-4 at 2000,
  gradients clipped to norm 1.0;
* the data and the score: a tinyslm run's own ``data/train.bin`` and ``data/val.bin``, and the val
  loss over the same 200 fixed validation batches that ``tinyslm train`` scores
  (``eval_batches(val, seed=train.seed)``), so the two numbers are directly comparable.

    tinyslm train --config configs/shakespeare_char.yaml --out runs/shakespeare_char
    python benchmarks/shakespeare_torch_reference.py --run runs/shakespeare_char --seeds 1337 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tinyslm.data.prepare import load_tokens, read_meta
from tinyslm.data.sampler import eval_batches

N_LAYERS, N_HEADS, D_MODEL, BLOCK, BATCH, STEPS = 4, 4, 128, 64, 12, 2000
LR, MIN_LR, WARMUP, WEIGHT_DECAY, CLIP, EVAL_BATCHES = 1e-3, 1e-4, 100, 0.1, 1.0, 200


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D_MODEL, bias=False), nn.LayerNorm(D_MODEL, bias=False)
        self.qkv, self.proj = nn.Linear(D_MODEL, 3 * D_MODEL, bias=False), nn.Linear(D_MODEL, D_MODEL, bias=False)
        self.up, self.down = nn.Linear(D_MODEL, 4 * D_MODEL, bias=False), nn.Linear(4 * D_MODEL, D_MODEL, bias=False)

    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = (t.view(B, T, N_HEADS, -1).transpose(1, 2) for t in self.qkv(self.ln1(x)).split(D_MODEL, dim=2))
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, D_MODEL))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, D_MODEL), nn.Embedding(BLOCK, D_MODEL)
        self.blocks = nn.ModuleList(Block() for _ in range(N_LAYERS))
        self.ln_f = nn.LayerNorm(D_MODEL, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * N_LAYERS) if name.endswith(("proj.weight", "down.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T  # tied output head
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def lr_at(step: int) -> float:
    """nanoGPT's schedule: linear warmup from lr/(WARMUP+1), then a cosine down to MIN_LR at STEPS."""
    if step < WARMUP:
        return LR * (step + 1) / (WARMUP + 1)
    ratio = (step - WARMUP) / (STEPS - WARMUP)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


def train_one(train: np.ndarray, val: np.ndarray, vocab_size: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = GPT(vocab_size)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=LR, betas=(0.9, 0.99))
    data = torch.from_numpy(train.astype(np.int64))
    start = time.perf_counter()
    for step in range(STEPS):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        ix = torch.randint(len(data) - BLOCK, (BATCH,))
        windows = torch.stack([data[i : i + BLOCK + 1] for i in ix.tolist()])
        loss = model(windows[:, :-1], windows[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
    wall = time.perf_counter() - start
    model.eval()
    batches = torch.from_numpy(eval_batches(val, seed=seed, n_batches=EVAL_BATCHES, batch_size=BATCH, seq_len=BLOCK).astype(np.int64))
    with torch.no_grad():
        val_loss = float(np.mean([model(b[:, :-1], b[:, 1:]).item() for b in batches]))
    return {"seed": seed, "val_loss": round(val_loss, 4), "train_wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a run of configs/shakespeare_char.yaml (for its data/ and vocabulary)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (match the cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, val = (load_tokens(f"{args.run}/data", split) for split in ("train", "val"))
    vocab_size = read_meta(f"{args.run}/data")["tokenizer"]["vocab_size"]
    runs = [train_one(train, val, vocab_size, seed) for seed in args.seeds]
    losses = [r["val_loss"] for r in runs]
    print(json.dumps({"runs": runs, "mean_val_loss": round(float(np.mean(losses)), 4), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
