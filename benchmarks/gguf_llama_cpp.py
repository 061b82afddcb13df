"""Does a tinyslm GGUF export run in llama.cpp? Compare llama.cpp's logits and tokenization with tinyslm's.

Exports the run as f32 and q8_0 GGUF, feeds the same token ids to llama.cpp (through
``llama-cpp-python``) and to tinyslm, and compares the next-token logits at every position and the
tokenization of the text. Prints one JSON object.

    pip install -e ".[hf]" llama-cpp-python   # llama-cpp-python compiles llama.cpp (~8 minutes on 2 cores)
    python benchmarks/gguf_llama_cpp.py --run runs/default
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import tinyslm  # noqa: F401  (XLA:CPU defaults before JAX starts)
import jax.numpy as jnp
from llama_cpp import Llama

from tinyslm.interop import export_gguf
from tinyslm.train import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a run directory (llama, qwen2 or gpt2 architecture)")
    parser.add_argument("--text", default="I have had a fever and a dry cough for three days.")
    args = parser.parse_args()

    run = load_run(args.run)
    ids = run.tokenizer.encode(args.text)
    ours = np.asarray(run.model(jnp.asarray([ids]))[0])  # (T, V)
    report = {"run": args.run, "tokens": len(ids), "logit_range": float(np.abs(ours).max())}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("f32", "q8_0"):
            path = export_gguf(run.path, Path(tmp, f"model-{dtype}.gguf"), dtype=dtype)
            llm = Llama(model_path=str(path), n_ctx=run.config.model.max_seq_len, logits_all=True, verbose=False)
            llm.eval(ids)
            theirs = np.asarray(llm.scores[: len(ids)], dtype=np.float32)
            report[dtype] = {
                "max_abs_logit_diff": float(np.abs(theirs - ours).max()),
                "argmax_agreement": float((theirs.argmax(-1) == ours.argmax(-1)).mean()),
                "same_tokenization": llm.tokenize(args.text.encode(), add_bos=False, special=False) == ids,
            }
            llm.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
