"""GPU training speed: tinyslm's compiled train step against PyTorch on the same shapes and GPU.

    python benchmarks/gpu_train.py --config configs/gpt2_124m.yaml --batch 16 --impl tinyslm
    python benchmarks/gpu_train.py --config configs/gpt2_124m.yaml --batch 16 --impl pytorch
    python benchmarks/gpu_train.py --config configs/gpt2_124m.yaml --batch 16 --set model.attention=naive

Both sides train GPT-2 small's shape in bf16 with fp32 master weights, AdamW, global-norm clipping
and tied embeddings, on the same random token batch:

* tinyslm — ``make_train_step`` exactly as ``tinyslm train`` runs it (jit, donated buffers,
  cuDNN flash attention through ``jax.nn.dot_product_attention``);
* the peer — transformers' ``GPT2LMHeadModel`` (its default SDPA attention) under ``torch.autocast(bf16)``,
  compiled with ``torch.compile``, ``torch.optim.AdamW(fused=True)``: the recipe nanoGPT uses.

MFU = model FLOPs per step (tinyslm.train.flops_per_token, the PaLM formula) / step time / the
card's published dense bf16 peak. Prints one JSON line; median over the timed steps. Run each side
in its own process: JAX reserves most of the GPU's memory for itself.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np
from flax import nnx

from tinyslm.config import load_config
from tinyslm.model import TransformerLM, param_count
from tinyslm.train import device_peak_flops, flops_per_token, make_optimizer, make_train_step
from train_throughput import median_ms  # the CPU benchmark's timer: median of timed calls after warm-up


def tinyslm_step_s(config, batch: int, warmup: int, steps: int) -> float:
    mc, tc = config.model, config.train
    graphdef, params = nnx.split(TransformerLM(mc, rngs=nnx.Rngs(0)))
    tx = make_optimizer(tc, params)
    state = {"params": params, "opt": tx.init(params)}
    train_step = make_train_step(graphdef, tx, use_dropout=mc.dropout > 0)
    windows = jax.device_put(np.random.default_rng(0).integers(0, mc.vocab_size, (1, batch, tc.seq_len + 1), np.int32))
    key = jax.random.key(0)

    def step():
        state["params"], state["opt"], metrics = train_step(state["params"], state["opt"], windows, key)
        metrics["loss"].block_until_ready()

    return median_ms(step, steps, warmup) / 1e3


def torch_step_s(config, batch: int, warmup: int, steps: int) -> float:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    mc, tc = config.model, config.train
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    hf_config = GPT2Config(vocab_size=mc.vocab_size, n_positions=mc.max_seq_len, n_embd=mc.d_model,
                           n_layer=mc.n_layers, n_head=mc.n_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                           activation_function="gelu_new", tie_word_embeddings=True)
    model = GPT2LMHeadModel(hf_config).cuda().train()  # attention through torch SDPA (the default)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2),
                                  weight_decay=tc.weight_decay, fused=True)
    windows = torch.randint(0, mc.vocab_size, (batch, tc.seq_len + 1), device="cuda")
    inputs, targets = windows[:, :-1], windows[:, 1:]

    def loss_of(inputs, targets):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(inputs).logits
        return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())

    compiled = torch.compile(loss_of)

    def step():
        loss = compiled(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()

    return median_ms(step, steps, warmup) / 1e3


def report(name: str, seconds: float, config, batch: int) -> dict:
    tokens = batch * config.train.seq_len
    flops = flops_per_token(config.model, config.train.seq_len) * tokens
    peak, source = device_peak_flops()
    row = {"impl": name, "device": jax.devices()[0].device_kind, "params_M": round(param_count(config.model) / 1e6, 1),
           "batch": batch, "seq_len": config.train.seq_len, "ms_per_step": round(seconds * 1e3, 2),
           "tokens_per_s": round(tokens / seconds), "mfu": round(flops / seconds / peak, 4), "peak": source}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/gpt2_124m.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--batch", type=int, default=16, help="sequences per step")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--impl", choices=["tinyslm", "pytorch"], default="tinyslm",
                        help="which side to time (pytorch needs torch with CUDA and transformers)")
    args = parser.parse_args()
    config = load_config(args.config, args.set)
    step_s = tinyslm_step_s if args.impl == "tinyslm" else torch_step_s
    report(args.impl, step_s(config, args.batch, args.warmup, args.steps), config, args.batch)


if __name__ == "__main__":
    main()
