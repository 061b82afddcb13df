"""Decoding speed on CPU: the KV cache against no cache, and tinyslm against Hugging Face transformers.

    .venv/bin/python benchmarks/decode.py            # prints one JSON object (a few minutes on 2 cores)
    .venv/bin/python benchmarks/decode.py --help     # sizes, token counts and repeats

Batch 1, a 16-token prompt, float32, greedy. Two comparisons, each measured in the same run:

(a) ``cache_vs_no_cache``: tinyslm with its KV cache against its own no-cache reference path
    (``use_cache=False``), on a 6-layer, 384-wide Llama-style model. The no-cache path recomputes
    the whole padded window (prompt bucket + new tokens) at every step, because its compiled
    loop has static shapes; a loop that recomputed only the tokens so far would do about half
    that work (``no_cache_window`` and ``mean_prefix`` below let you scale the ratio).
(b) ``vs_transformers``: the same weights loaded into ``transformers.LlamaForCausalLM``, first
    checked to give the same logits, then both timed with greedy decoding and a KV cache
    (``generate(use_cache=True, do_sample=False)``), for a tiny and a mid-sized model.

Speeds are medians over ``--repeats`` runs after a warm-up run (the no-cache path takes minutes
per run, so it gets ``--no-cache-repeats`` and no warm-up). ``tokens_per_s`` is new tokens / wall
time of the whole call (prefill included; tinyslm's compile time excluded), measured the same way
for both libraries; ``ms_per_token`` is decode time per token after the first; ``prefill_ms`` is
the time to the first token. Run it alone on the machine: other processes skew the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import numpy as np
from flax import nnx

from tinyslm.config import ModelConfig
from tinyslm.decode import cache_length, generate_ids, prompt_bucket
from tinyslm.model import TransformerLM, count_params


def llama(n_layers: int, d_model: int, n_heads: int, vocab_size: int, context: int) -> TransformerLM:
    config = ModelConfig(preset="llama", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                         max_seq_len=context)
    return TransformerLM(config, rngs=nnx.Rngs(0))


def prompt_ids(vocab_size: int, length: int) -> list[int]:
    return np.random.default_rng(0).integers(0, vocab_size, length).tolist()


def median_of(runs: list[dict]) -> dict:
    return {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}


def time_tinyslm(model: TransformerLM, prompt: list[int], new_tokens: int, repeats: int, use_cache: bool = True) -> dict:
    """Median wall-clock speed of ``generate_ids``, with its own prefill/decode split.

    The wall time leaves out the compile time the result reports (about 1 ms once warm), so
    the slow no-cache path needs no warm-up run; the fast cached path gets one anyway.
    """
    if use_cache:
        generate_ids(model, [prompt], max_new_tokens=new_tokens)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = generate_ids(model, [prompt], max_new_tokens=new_tokens, use_cache=use_cache)
        wall = time.perf_counter() - start - result.compile_ms / 1000
        assert result.new_tokens == [new_tokens]
        runs.append({"tokens_per_s": new_tokens / wall, "ms_per_token": result.ms_per_token,
                     "prefill_ms": result.prefill_ms, "wall_s": wall})
    return {"new_tokens": new_tokens, **median_of(runs), "token_ids": result.token_ids[0]}


# ----------------------------------------------------------------------------- transformers


def to_transformers(model: TransformerLM):
    """The same weights in a ``LlamaForCausalLM`` (torch Linear weights are (out, in): transpose kernels)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    c = model.config
    hf = LlamaForCausalLM(LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.d_model, intermediate_size=c.d_ff, num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads, num_key_value_heads=c.n_kv_heads, max_position_embeddings=c.max_seq_len,
        rms_norm_eps=c.norm_eps, rope_theta=c.rope_theta, tie_word_embeddings=c.tie_embeddings,
        attention_bias=False, mlp_bias=False, hidden_act="silu",
    ))
    tensor = lambda param, transpose=False: torch.from_numpy(np.array(param[...].T if transpose else param[...]))
    weights = {"model.embed_tokens.weight": tensor(model.embed.weight), "model.norm.weight": tensor(model.final_norm.scale)}
    for i, block in enumerate(model.blocks):
        layer = f"model.layers.{i}."
        weights[layer + "input_layernorm.weight"] = tensor(block.attn_norm.scale)
        weights[layer + "post_attention_layernorm.weight"] = tensor(block.mlp_norm.scale)
        for name in "qkvo":
            weights[layer + f"self_attn.{name}_proj.weight"] = tensor(getattr(block.attn, name).kernel, transpose=True)
        for name in ("gate", "up", "down"):
            weights[layer + f"mlp.{name}_proj.weight"] = tensor(getattr(block.mlp, name).kernel, transpose=True)
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    hf.tie_weights()
    hf.generation_config.eos_token_id = None  # never stop early: both sides make exactly N tokens
    hf.generation_config.pad_token_id = 0
    return hf.eval()


def check_same_logits(model: TransformerLM, hf, prompt: list[int]) -> float:
    """Assert that both models give the same logits for the prompt; return the largest difference."""
    import torch

    ours = np.asarray(model(jax.numpy.asarray([prompt])))
    with torch.inference_mode():
        theirs = hf(torch.tensor([prompt])).logits.numpy()
    diff = float(np.abs(ours - theirs).max())
    assert diff < 1e-4, f"logits differ by {diff}: the weight copy is wrong"
    return diff


def time_transformers(hf, prompt: list[int], new_tokens: int, repeats: int) -> dict:
    """Median speed of ``hf.generate`` (greedy, KV cache); prefill = a 1-token generate."""
    import torch

    ids = torch.tensor([prompt])

    def run(n: int) -> tuple[float, list[int]]:
        start = time.perf_counter()
        with torch.inference_mode():
            out = hf.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True)
        return time.perf_counter() - start, out[0, len(prompt):].tolist()

    run(new_tokens)  # warm-up
    runs = []
    for _ in range(repeats):
        first, _ = run(1)
        wall, tokens = run(new_tokens)
        runs.append({"tokens_per_s": new_tokens / wall, "ms_per_token": 1000 * (wall - first) / (new_tokens - 1),
                     "prefill_ms": 1000 * first, "wall_s": wall})
    return {"new_tokens": new_tokens, **median_of(runs), "token_ids": tokens}


def versus_transformers(model: TransformerLM, prompt: list[int], new_tokens: int, repeats: int) -> dict:
    hf = to_transformers(model)
    max_logit_diff = check_same_logits(model, hf, prompt)
    ours = time_tinyslm(model, prompt, new_tokens, repeats)
    theirs = time_transformers(hf, prompt, new_tokens, repeats)
    same = next((i for i, (a, b) in enumerate(zip(ours.pop("token_ids"), theirs.pop("token_ids"))) if a != b), new_tokens)
    return {
        "params": count_params(model),
        "max_logit_diff": max_logit_diff,
        "greedy_tokens_identical": same,  # leading greedy tokens the two agree on (float ties may split later)
        "tinyslm": ours,
        "transformers": theirs,
        "speedup": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--cache-model", default="6,384,6,1024", help="layers,width,heads,vocab for (a)")
    parser.add_argument("--cache-new-tokens", type=int, default=512)
    parser.add_argument("--tiny-model", default="2,64,4,512", help="layers,width,heads,vocab for (b) tiny")
    parser.add_argument("--tiny-new-tokens", type=int, default=512)
    parser.add_argument("--mid-model", default="8,512,8,32000", help="layers,width,heads,vocab for (b) mid")
    parser.add_argument("--mid-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cache-repeats", type=int, default=1, help="the no-cache path is slow")
    parser.add_argument("--skip-transformers", action="store_true")
    args = parser.parse_args()
    sizes = lambda text: [int(x) for x in text.split(",")]

    out = {
        "benchmark": "decode",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {jax.default_backend()}",
        "jax": jax.__version__,
        "batch": 1, "prompt_tokens": args.prompt_len, "dtype": "float32", "sampler": "greedy",
    }

    model = llama(*sizes(args.cache_model), args.context)
    prompt = prompt_ids(model.config.vocab_size, args.prompt_len)
    cached = time_tinyslm(model, prompt, args.cache_new_tokens, args.repeats)
    uncached = time_tinyslm(model, prompt, args.cache_new_tokens, args.no_cache_repeats, use_cache=False)
    assert cached.pop("token_ids") == uncached.pop("token_ids"), "cache and no-cache disagree"
    out["cache_vs_no_cache"] = {
        "model": args.cache_model, "params": count_params(model),
        "kv_cache": cached, "no_cache": uncached,
        "no_cache_window": cache_length(prompt_bucket(args.prompt_len, args.context), args.cache_new_tokens, args.context),
        "mean_prefix": args.prompt_len + args.cache_new_tokens / 2,
        "speedup": round(cached["tokens_per_s"] / uncached["tokens_per_s"], 1),
    }

    if not args.skip_transformers:
        import torch
        import transformers

        torch.set_num_threads(2)
        out["torch"], out["transformers"] = torch.__version__, transformers.__version__
        out["vs_transformers"] = {}
        for name, spec, new_tokens in [("tiny", args.tiny_model, args.tiny_new_tokens),
                                       ("mid", args.mid_model, args.mid_new_tokens)]:
            model = llama(*sizes(spec), args.context)
            prompt = prompt_ids(model.config.vocab_size, args.prompt_len)
            out["vs_transformers"][name] = {"model": spec, **versus_transformers(model, prompt, new_tokens, args.repeats)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
