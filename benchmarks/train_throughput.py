"""Train-step throughput: tinyslm against PyTorch on the identical model, same machine, same run.

The peer is Hugging Face ``transformers``' ``GPT2LMHeadModel`` with the same shape (biases, tied
embeddings, tanh GELU, no dropout) trained by ``torch.optim.AdamW``; tinyslm runs its own compiled
train step (AdamW, clipping, the lot). Both in float32 on the CPU, both on the same batch shape,
in this process, taking turns (never at the same time: they would fight for the cores). With
``--arch llama`` both sides are Llama instead (RoPE, RMSNorm, SwiGLU, no biases, tied embeddings):
tinyslm's ``llama`` preset against ``LlamaForCausalLM`` with the same parameters.

    python benchmarks/train_throughput.py              # both sizes, prints one JSON object
    python benchmarks/train_throughput.py --sizes shakespeare --rounds 12
    python benchmarks/train_throughput.py --arch llama --sizes shakespeare

The two take turns in rounds: tinyslm times 10 steps (two runs of 5), then PyTorch does, and
the next round starts with PyTorch. A short rest before each turn lets the other's idle threads
stop spinning. A shared machine's load drifts over minutes; taking turns puts the same drift on
both, so the ratio of each round is fair even when the absolute times are not.

Reported per size: the median over rounds of each one's ms/step and tokens/s, the per-round ratios
and their median, and tinyslm's MFU against the measured float32 matmul peak of this machine.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable

import numpy as np

import tinyslm  # noqa: F401  (sets the XLA:CPU defaults before JAX starts)
import jax
from flax import nnx

from tinyslm.config import ModelConfig, TrainConfig
from tinyslm.model import TransformerLM, param_count
from tinyslm.train import device_peak_flops, flops_per_token, make_optimizer, make_train_step

SIZES = {
    # nanoGPT's Shakespeare CPU recipe (with GPT-2's biases, as the peer has them)
    "shakespeare": dict(d_model=128, n_layers=4, n_heads=4, seq_len=64, batch=12, vocab=65),
    # a wider model: 6 layers x 384, context 256, batch 8
    "wide": dict(d_model=384, n_layers=6, n_heads=6, seq_len=256, batch=8, vocab=65),
}


def median_ms(step: Callable, steps: int, warmup: int, run_length: int = 5) -> float:
    """Median ms per step over runs of ``run_length`` consecutive steps.

    ``step(sync=False)`` may return before its work is done (JAX dispatches asynchronously);
    ``step(sync=True)`` waits for it. Waiting once at the end of each run measures what a training
    loop sustains: ``tinyslm train`` waits for a loss only at its log interval, and eager PyTorch
    always waits.
    """
    for _ in range(warmup):
        step(sync=True)
    times = []
    for _ in range(max(1, steps // run_length)):
        start = time.perf_counter()
        for i in range(run_length):
            step(sync=i == run_length - 1)
        times.append((time.perf_counter() - start) / run_length)
    return float(np.median(times) * 1e3)


def tinyslm_step(size: dict, arch: str = "gpt") -> tuple[Callable, ModelConfig]:
    config = ModelConfig(preset=arch, vocab_size=size["vocab"], d_model=size["d_model"], n_layers=size["n_layers"],
                         n_heads=size["n_heads"], max_seq_len=size["seq_len"])
    train_config = TrainConfig(batch_size=size["batch"], seq_len=size["seq_len"], lr=1e-3, weight_decay=0.1)
    graphdef, params = nnx.split(TransformerLM(config, rngs=nnx.Rngs(0)))
    tx = make_optimizer(train_config, params)
    state = {"params": params, "opt": tx.init(params)}
    train_step = make_train_step(graphdef, tx, use_dropout=False)
    windows = np.random.default_rng(0).integers(0, size["vocab"], (1, size["batch"], size["seq_len"] + 1)).astype(np.int32)
    key = jax.random.key(0)

    def step(sync: bool):
        state["params"], state["opt"], metrics = train_step(state["params"], state["opt"], windows, key)
        if sync:
            metrics["loss"].block_until_ready()

    return step, config


def torch_model(size: dict, ours: ModelConfig):
    """The peer of tinyslm's model ``ours``: ``transformers``' GPT-2 or Llama of its shape, in training mode."""
    import transformers

    if ours.preset == "llama":
        config = transformers.LlamaConfig(
            vocab_size=size["vocab"], hidden_size=size["d_model"], intermediate_size=ours.d_ff,
            num_hidden_layers=size["n_layers"], num_attention_heads=size["n_heads"],
            max_position_embeddings=size["seq_len"], rms_norm_eps=1e-5, tie_word_embeddings=True)
        return transformers.LlamaForCausalLM(config).train()
    config = transformers.GPT2Config(vocab_size=size["vocab"], n_positions=size["seq_len"], n_embd=size["d_model"],
                                     n_layer=size["n_layers"], n_head=size["n_heads"], resid_pdrop=0.0,
                                     embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu_new")
    return transformers.GPT2LMHeadModel(config).train()


def torch_step(size: dict, ours: ModelConfig) -> tuple[Callable, int]:
    import torch

    torch.manual_seed(0)
    model = torch_model(size, ours)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    windows = torch.randint(0, size["vocab"], (size["batch"], size["seq_len"] + 1))
    inputs, targets = windows[:, :-1], windows[:, 1:]

    def step(sync: bool):  # eager PyTorch is always in sync
        logits = model(inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step, sum(p.numel() for p in model.parameters())


def interleaved_ms(steps: dict[str, Callable], rounds: int, steps_per_round: int, pause_s: float) -> dict[str, list[float]]:
    """Per-round median ms/step of each step function, the functions taking turns (order reversed every round)."""
    names = list(steps)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            time.sleep(pause_s)
            times[name].append(median_ms(steps[name], steps_per_round, warmup=1))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--arch", default="gpt", choices=["gpt", "llama"],
                        help="gpt: GPT2LMHeadModel as the peer (the default); llama: LlamaForCausalLM")
    parser.add_argument("--rounds", type=int, default=8, help="turns each of tinyslm and PyTorch takes")
    parser.add_argument("--steps-per-round", type=int, default=10, help="timed steps per turn (in runs of 5)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps of each before the first round")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds of rest before each turn")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (match the cores)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    peak, peak_source = device_peak_flops()
    report = {"arch": args.arch, "peak_flops": peak, "peak_source": peak_source, "torch": torch.__version__,
              "jax": jax.__version__, "sizes": {}}
    for name in args.sizes:
        size = SIZES[name]
        tokens = size["batch"] * size["seq_len"]
        ours, config = tinyslm_step(size, args.arch)
        peer, torch_params = torch_step(size, config)
        assert torch_params == param_count(config), "the peer must have exactly tinyslm's parameters"
        for step in (ours, peer):
            for _ in range(args.warmup):
                step(sync=True)
        times = interleaved_ms({"tinyslm": ours, "torch": peer}, args.rounds, args.steps_per_round, args.pause)
        ratios = [t / o for o, t in zip(times["tinyslm"], times["torch"])]
        ours_ms, torch_ms = float(np.median(times["tinyslm"])), float(np.median(times["torch"]))
        report["sizes"][name] = {
            **size, "params": param_count(config), "rounds": args.rounds,
            "tinyslm_ms_per_step": round(ours_ms, 2), "torch_ms_per_step": round(torch_ms, 2),
            "tinyslm_tokens_per_s": round(tokens / ours_ms * 1e3), "torch_tokens_per_s": round(tokens / torch_ms * 1e3),
            "speedup_vs_torch": round(float(np.median(ratios)), 3),
            "speedup_per_round": [round(r, 3) for r in ratios],
            "rounds_tinyslm_faster": sum(r > 1 for r in ratios),
            "tinyslm_mfu": round(flops_per_token(config, size["seq_len"]) * tokens / (ours_ms / 1e3) / peak, 4),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
