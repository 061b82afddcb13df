"""The ``tinyslm`` command line: thin wrappers that parse arguments, call the library, and print.

Every command has ``--help``. Commands that produce figures accept ``--json`` and then print
exactly one JSON object as the last line of stdout. Mistakes a user can make (bad config, missing
file, wrong run directory) are reported as one clear line, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinyslm.errors import TinySLMError

EPILOG = """examples:
  tinyslm train                                   train the default model on the built-in symptom corpus
  tinyslm train --config configs/shakespeare_char.yaml --set train.max_steps=500
  tinyslm train --out runs/default --resume       continue an interrupted run
  tinyslm eval --run runs/default --json
  tinyslm data list
"""


def _train(args: argparse.Namespace) -> dict:
    from tinyslm.config import load_config
    from tinyslm.train import train
    from tinyslm.train.checkpoint import CONFIG_FILE

    if args.resume:
        if not args.out:
            raise TinySLMError("--resume needs --out: the run directory to continue")
        config = load_config(Path(args.out) / CONFIG_FILE, args.set)
        out = Path(args.out)
    else:
        config = load_config(args.config, args.set)
        out = Path(args.out) if args.out else _free_run_dir(Path(args.config).stem if args.config else "default")
    print(f"Training into {out}" + (f" with {args.config}" if args.config else " with the default config"), file=sys.stderr)
    result = train(config, out, resume=args.resume, progress=not args.no_progress)
    print(f"\nDone: step {result.final_step}, train loss {result.train_loss:.4f}"
          + (f", val loss {result.val_loss:.4f}" if result.val_loss is not None else "")
          + f", {result.wall_s:.0f} s, {result.tokens_per_s:,.0f} tokens/s")
    print(f"Run directory: {out}  (config.yaml, checkpoints/, metrics.jsonl, loss.png)")
    return result.summary()


def _free_run_dir(name: str) -> Path:
    """runs/NAME, or runs/NAME-2, -3, ... if taken: re-running a command never clobbers a run."""
    candidate, n = Path("runs") / name, 2
    while candidate.exists():
        candidate, n = Path("runs") / f"{name}-{n}", n + 1
    return candidate


def _eval(args: argparse.Namespace) -> dict:
    from tinyslm.config import replace
    from tinyslm.data import load_labeled, load_text, load_tokens, split_point
    from tinyslm.train import load_run
    from tinyslm.train.checkpoint import DATA_DIR
    from tinyslm.train.evaluate import evaluate_tokens

    run = load_run(args.run)
    if args.data is None:
        if args.split != "val":
            raise TinySLMError("--split test needs --data NAME (the run's own data has train and val splits only)")
        tokens, source = load_tokens(Path(args.run) / DATA_DIR, "val"), "the run's validation split"
    elif args.split == "test":
        text = "\n".join(text for _, text in load_labeled(args.data, "test")) + "\n"
        tokens, source = run.tokenizer.encode(text), f"{args.data} test split"
    else:
        text = load_text(replace(run.config.data, name=args.data, path=None))
        text = text[split_point(text, run.config.data.val_fraction):]
        tokens, source = run.tokenizer.encode(text), f"{args.data} validation split"
    result = evaluate_tokens(run.model, tokens, seq_len=run.config.train.seq_len)
    print(f"{source}: loss {result['val_loss']:.4f} · perplexity {result['perplexity']:.2f} · {result['tokens']:,} tokens")
    return result


def _data(args: argparse.Namespace) -> dict:
    from tinyslm.config import DataConfig, TokenizerConfig
    from tinyslm.data import list_datasets, load_text, prepare
    from tinyslm.tokenizer import train_tokenizer

    if args.data_command == "list":
        rows = list_datasets()
        for d in rows:
            print(f"{d.name:<20} {d.license:<28} {d.description}")
        return {"datasets": [d.name for d in rows]}
    text = load_text(DataConfig(name=args.name))
    tokenizer = train_tokenizer(TokenizerConfig(type=args.type, vocab_size=args.vocab_size), text)
    out = Path(args.out or f"data/{args.name}")
    tokenizer.save(out / "tokenizer")
    meta = prepare(text, tokenizer, out, args.val_fraction, source=args.name)
    print(f"Wrote {out}/train.bin, val.bin, meta.json and tokenizer/")
    return meta


def _tokenizer(args: argparse.Namespace) -> dict:
    from tinyslm.config import DataConfig, TokenizerConfig
    from tinyslm.data import load_text
    from tinyslm.tokenizer import train_tokenizer

    text = load_text(DataConfig(name=args.data))
    tokenizer = train_tokenizer(TokenizerConfig(type=args.type, vocab_size=args.vocab_size), text)
    tokenizer.save(args.out)
    sample = text[:2000]
    n_tokens = len(tokenizer.encode(sample))
    print(f"Saved a {args.type} tokenizer with {tokenizer.vocab_size} ids to {args.out}; "
          f"{len(sample) / n_tokens:.2f} characters per token on the first 2000 characters")
    return {"vocab_size": tokenizer.vocab_size, "chars_per_token": len(sample) / n_tokens}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyslm",
        description="Small language models from scratch in JAX: train, evaluate, generate, compress.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = commands.add_parser("train", help="train a model into a run directory",
                            description="Train a model from a YAML config (default: the built-in symptom corpus).")
    p.add_argument("--config", help="YAML config file, e.g. configs/shakespeare_char.yaml (default: built-in defaults "
                   "= configs/default.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by its dotted path, e.g. --set model.n_layers=2 (repeatable)")
    p.add_argument("--out", help="run directory (default: runs/<config name>, numbered if taken)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    p.add_argument("--json", action="store_true", help="print the final figures as one JSON line")
    p.set_defaults(handler=_train)

    p = commands.add_parser("eval", help="loss and perplexity of a run on every token of a split")
    p.add_argument("--run", required=True, help="run directory, e.g. runs/default")
    p.add_argument("--data", help="dataset name (default: the run's own validation split)")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_eval)

    p = commands.add_parser("data", help="list datasets or tokenise one into train/val token files")
    data_commands = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    data_commands.add_parser("list", help="the named datasets and their licenses").set_defaults(handler=_data, json=False)
    q = data_commands.add_parser("prepare", help="train a tokenizer on a dataset and write train.bin/val.bin")
    q.add_argument("name", help="dataset name (see `tinyslm data list`)")
    q.add_argument("--type", choices=("char", "bpe", "unigram"), default="bpe")
    q.add_argument("--vocab-size", type=int, default=1024)
    q.add_argument("--val-fraction", type=float, default=0.1)
    q.add_argument("--out", help="output folder (default: data/NAME)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=_data)

    p = commands.add_parser("tokenizer", help="train a tokenizer")
    tok_commands = p.add_subparsers(dest="tokenizer_command", metavar="ACTION", required=True)
    q = tok_commands.add_parser("train", help="train a char, BPE or unigram tokenizer on a dataset")
    q.add_argument("--data", required=True, help="dataset name (see `tinyslm data list`)")
    q.add_argument("--vocab-size", type=int, default=1024)
    q.add_argument("--type", choices=("bpe", "unigram", "char"), default="bpe")
    q.add_argument("--out", required=True, help="folder to write the tokenizer to")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=_tokenizer)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        result = args.handler(args)
    except TinySLMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if getattr(args, "json", False):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
