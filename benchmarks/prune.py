"""Pruning bars (issue 7) on a trained run: quality of magnitude / Wanda / N:M, and structured pruning
with recovery against the same-shape model trained from scratch on the same tokens.

    python benchmarks/prune.py --run runs/shakespeare_char [--plot prune_sweep.png] [--work /tmp/prune-bench]
    python benchmarks/prune.py --run runs/tinystories500 --at-50-only      # only the 50% / 2:4 comparison
    python benchmarks/prune.py --run runs/smollm2 --data tinystories --eval-tokens 4096   # an imported model

Prints one JSON object:

* ``at_50``: 50% unstructured and 2:4, one-shot against sequential calibration for Wanda —
  magnitude (per layer), Wanda (per output) calibrated one-shot and block by block, 2:4 for each;
* ``sweep``: validation perplexity of magnitude, Wanda and structured pruning (no recovery) at each
  ``--sparsities`` value, and 2:4 / 4:8 for both scores;
* ``structured``: 25% of heads and MLP neurons removed (``--structured``): parameters, bytes, decode
  tokens/s of the original and the pruned model (greedy, batch 1, measured side by side in this
  process), the perplexity before recovery, after ``--recover-fraction`` (5%) of the parent's
  training tokens of recovery, and of the same-shape model trained from scratch on those tokens
  with the same schedule;
* ``bars``: each bar of issue 7, true or false.

``--data NAME`` is for a run without data of its own (an imported model such as SmolLM2-135M):
calibration windows come from the training part of dataset NAME, tokenized with the run's
tokenizer, and perplexity is measured on its held-out end (the first ``--eval-tokens`` of it). Only
``at_50`` is measured then: the sweep and recovery of a 135M-parameter model take hours on a CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tinyslm.compress.calibrate import calibration_windows
from tinyslm.compress.prune_run import PruneSpec, measure, plot_sweep, prune_model, recover, recovery_config, sweep
from tinyslm.compress.quantize_report import held_out_tokens
from tinyslm.train import Run, load_run, train

AT_50 = (PruneSpec("magnitude", 0.5), PruneSpec("wanda", 0.5), PruneSpec("wanda", 0.5, sequential=True),
         PruneSpec("nm", nm=(2, 4), score="magnitude"), PruneSpec("nm", nm=(2, 4), score="wanda"),
         PruneSpec("nm", nm=(2, 4), score="wanda", sequential=True))


def at_50(parent: Run, windows, val) -> dict[str, float]:
    """Perplexity of each :data:`AT_50` variant (and of the original), by label."""
    ppl = {"original": measure(parent.model, parent, val, "original")["perplexity"]}
    for spec in AT_50:
        ppl[spec.label] = measure(prune_model(parent.model, spec, windows)[0], parent, val, spec.label)["perplexity"]
        print(f"{spec.label}: {ppl[spec.label]:.3f}", flush=True)
    return ppl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained run directory")
    parser.add_argument("--sparsities", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--structured", type=float, default=0.25, help="fraction of heads and neurons to remove")
    parser.add_argument("--recover-fraction", type=float, default=0.05,
                        help="recovery tokens / parent's training tokens")
    parser.add_argument("--recover-lr", type=float,
                        help="peak learning rate of recovery (default: a tenth of the run's)")
    parser.add_argument("--calibration", type=int, default=128, help="calibration windows of training text")
    parser.add_argument("--data", help="calibrate on this dataset's training part and evaluate on its held-out end "
                        "(only the at_50 comparison is measured)")
    parser.add_argument("--eval-tokens", type=int, help="evaluate on only the first N held-out tokens")
    parser.add_argument("--at-50-only", action="store_true", help="measure only the at_50 comparison")
    parser.add_argument("--plot", help="write the sparsity-vs-perplexity plot here")
    parser.add_argument("--work", help="folder for the recovery and scratch runs (default: a temporary folder)")
    args = parser.parse_args()

    parent = load_run(args.run)
    val = held_out_tokens(parent, args.data, args.eval_tokens)
    windows = calibration_windows(parent.path, args.calibration, parent.config.train.seq_len, data=args.data)
    compared = at_50(parent, windows, val)
    if args.data or args.at_50_only:
        print(json.dumps({"run": str(args.run), "data": args.data, "eval_tokens": int(len(val)),
                          "calibration_windows": windows.shape, "at_50": compared}))
        return

    variants = sweep(args.run, [float(s) for s in args.sparsities.split(",")], patterns=((2, 4), (4, 8)),
                     n_calibration=args.calibration)
    if args.plot:
        plot_sweep(variants, args.plot, title=f"pruning {Path(args.run).name} (no recovery)")
    at_half = {v["method"]: v["perplexity"] for v in variants if v["sparsity"] and abs(v["sparsity"] - 0.5) < 0.01}
    two_four = {v["method"]: v["perplexity"] for v in variants if v["name"].startswith("2:4")}

    # The comparison group matters as much as the score: every score x scope at 50%.
    scopes = [PruneSpec(method, 0.5, scope=scope)
              for method in ("magnitude", "wanda") for scope in ("output", "layer", "global")]
    by_scope = {f"{s.method} {s.scope}": measure(prune_model(parent.model, s, windows)[0], parent, val,
                                                 s.label)["perplexity"] for s in scopes}
    steps = max(1, round(args.recover_fraction * parent.config.train.max_steps))
    spec = PruneSpec("structured", args.structured)
    original = measure(parent.model, parent, val, "original", decode_tokens=128)
    pruned, _ = prune_model(parent.model, spec, windows)
    before = measure(pruned, parent, val, spec.label, decode_tokens=128)
    work = Path(args.work or tempfile.mkdtemp(prefix="tinyslm-prune-bench-"))
    recovered = recover(parent, pruned, work / "recovered", steps, lr=args.recover_lr, progress=False)
    after = measure(recovered.model, parent, val, f"{spec.label} + recovery")
    # From scratch gets the parent's own recipe (its peak learning rate), squeezed into the same steps.
    scratch_config = recovery_config(parent.config, pruned, steps, lr=parent.config.train.lr)
    scratch = train(scratch_config, work / "scratch", progress=False)  # a fresh model of the pruned shape
    from_scratch = measure(scratch.model, parent, val, "same shape from scratch")
    tokens = steps * parent.config.train.batch_size * parent.config.train.seq_len * parent.config.train.grad_accum

    report = {
        "run": str(args.run), "calibration_windows": windows.shape, "at_50": compared, "sweep": variants,
        "at_50_by_scope": by_scope,
        "structured": {
            "spec": spec.label,
            "config": {k: getattr(pruned.config, k) for k in ("n_layers", "n_heads", "n_kv_heads", "d_ff")},
            "original": original, "pruned": before, "recovered": after, "scratch": from_scratch,
            "recovery_steps": steps, "recovery_tokens": tokens,
            "decode_speedup": round(before["tokens_per_s"] / original["tokens_per_s"], 3),
        },
        "bars": {
            "wanda_beats_magnitude_at_50": at_half["wanda"] < at_half["magnitude"],
            "2:4_worse_than_50_unstructured_magnitude": two_four["nm magnitude"] > at_half["magnitude"],
            "2:4_worse_than_50_unstructured_wanda": two_four["nm wanda"] > at_half["wanda"],
            "structured_params_drop": before["params"] < original["params"],
            "recovered_beats_scratch": after["perplexity"] < from_scratch["perplexity"],
        },
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
