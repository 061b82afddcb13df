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
  tinyslm generate --run runs/default --prompt "I have had a fever" --stream
  tinyslm data list
  tinyslm check 03                                grade your answers to lesson 03's exercises
"""


def _train(args: argparse.Namespace) -> dict:
    from tinyslm.config import load_config
    from tinyslm.train import train
    from tinyslm.train.checkpoint import CONFIG_FILE
    from tinyslm.train.parallel import initialize_distributed

    if args.distributed:
        initialize_distributed()
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
    if not result.interrupted and config.train.samples > 0:
        _print_samples(result, config.train)
    return result.summary()


def _print_samples(result, train_config) -> None:
    """Show what the model learned: a few continuations of the sample prompt."""
    from tinyslm.decode import generate, make_sampler

    prompt = train_config.sample_prompt
    samples = generate(result.model, result.tokenizer, [prompt] * train_config.samples,
                       max_new_tokens=train_config.sample_tokens, sampler=make_sampler(temperature=0.8, top_k=200),
                       seed=train_config.seed)
    print(f"\nSamples (temperature 0.8, top-k 200, prompt {prompt!r}):")
    for text in samples.texts:
        print("  " + (prompt + text).strip().replace("\n", "\n  "))
    print(f"  [{samples.summary_line()}]")


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


def _generate(args: argparse.Namespace) -> dict:
    from tinyslm.decode import generate, make_sampler, stream
    from tinyslm.train import load_run

    run = load_run(args.run)
    sampler = make_sampler(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                           repetition_penalty=args.repetition_penalty)
    options = dict(max_new_tokens=args.max_new_tokens, sampler=sampler, seed=args.seed, stop=args.stop,
                   use_cache=not args.no_cache, truncate_prompt=args.truncate_prompt)
    if args.stream:
        pieces = stream(run.model, run.tokenizer, args.prompt, **options)
        print(args.prompt, end="", flush=True)
        for piece in pieces:
            print(piece, end="", flush=True)
        print()
        result = pieces.result
    else:
        result = generate(run.model, run.tokenizer, args.prompt, **options)
        print(args.prompt + result.texts[0])
    print(result.summary_line() + f" · finished: {result.finish_reasons[0]}", file=sys.stderr)
    return result.summary()


def _interop():
    """tinyslm.interop, or a clear message when the optional Hugging Face stack is missing."""
    try:
        import tinyslm.interop as interop
    except ImportError as err:
        raise TinySLMError(f"this command needs the Hugging Face extra ({err.name} is missing): "
                           "pip install 'tinyslm[hf]'") from None
    return interop


def _import_hf(args: argparse.Namespace) -> dict:
    out = _interop().import_hf(args.directory, args.out)
    print(f"Imported {args.directory} into {out}; try: tinyslm generate --run {out} --prompt ...")
    return {"run_dir": str(out)}


def _export_hf(args: argparse.Namespace) -> dict:
    out = _interop().export_hf(args.run, args.out)
    print(f"Wrote a Hugging Face model directory to {out} (AutoModelForCausalLM.from_pretrained loads it)")
    return {"out": str(out)}


def _import_gguf(args: argparse.Namespace) -> dict:
    out = _interop().import_gguf(args.file, args.out)
    print(f"Imported {args.file} into {out}; try: tinyslm generate --run {out} --prompt ...")
    return {"run_dir": str(out)}


def _export_gguf(args: argparse.Namespace) -> dict:
    out = _interop().export_gguf(args.run, args.out, dtype=args.dtype)
    print(f"Wrote {out} ({args.dtype}) for llama.cpp / Ollama")
    return {"out": str(out)}


def _check(args: argparse.Namespace) -> int:
    from tinyslm.grader import check

    return check(args.lesson, args.path)  # the exit code: 0 when every exercise passes


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
    p.add_argument("--distributed", action="store_true",
                   help="one process of a multi-host job (TPU pod, SLURM/GPU cluster): connect to the others first; "
                   "all devices of all hosts then form train.mesh (see README, 'Hardware')")
    p.add_argument("--json", action="store_true", help="print the final figures as one JSON line")
    p.set_defaults(handler=_train)

    p = commands.add_parser("eval", help="loss and perplexity of a run on every token of a split")
    p.add_argument("--run", required=True, help="run directory, e.g. runs/default")
    p.add_argument("--data", help="dataset name (default: the run's own validation split)")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_eval)

    p = commands.add_parser("generate", help="continue a prompt with a trained model (KV-cached)",
                            description="Continue a prompt token by token with the KV-cached decoder.")
    p.add_argument("--run", required=True, help="run directory, e.g. runs/default")
    p.add_argument("--prompt", required=True, help="the text to continue")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (always the most likely token)")
    p.add_argument("--top-k", type=int, help="sample only among the K most likely tokens")
    p.add_argument("--top-p", type=float, help="sample from the smallest set of tokens whose probability reaches P")
    p.add_argument("--min-p", type=float, help="drop tokens less likely than P x the most likely one")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeating tokens")
    p.add_argument("--seed", type=int, default=0, help="same seed, same text")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop when this text appears")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context per token (slow; for comparison)")
    p.add_argument("--truncate-prompt", action="store_true", help="keep the end of a prompt longer than the context")
    p.add_argument("--stream", action="store_true", help="print the text as it is produced")
    p.add_argument("--json", action="store_true", help="text, new_tokens, prefill_ms, tokens_per_s, ms_per_token")
    p.set_defaults(handler=_generate)

    p = commands.add_parser("import-hf", help="convert a local Hugging Face model directory (GPT-2, Llama, Qwen2) "
                            "into a run")
    p.add_argument("directory", help="folder with config.json, model.safetensors (or shards + index) and tokenizer files")
    p.add_argument("--out", required=True, help="run directory to create, e.g. runs/smollm2")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_import_hf)

    p = commands.add_parser("export-hf", help="write a run as a Hugging Face model directory that transformers loads")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_export_hf)

    p = commands.add_parser("import-gguf", help="convert a GGUF file (llama, qwen2, gpt2; any quantization) into a run")
    p.add_argument("file", help="the .gguf file")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_import_gguf)

    p = commands.add_parser("export-gguf", help="write a run as one GGUF file for llama.cpp / Ollama")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--out", required=True, help="the .gguf file to write")
    p.add_argument("--dtype", choices=("f32", "q8_0"), default="f32")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_export_gguf)

    p = commands.add_parser("check", help="grade your answers to a lesson's exercises",
                            description="Grade lessons/NN_topic/exercises.py against tinyslm's reference "
                            "implementations, exercise by exercise, with a hint for each failure.")
    p.add_argument("lesson", help="lesson number or name, e.g. 03 or attention")
    p.add_argument("--path", help="grade this file instead of lessons/NN_topic/exercises.py")
    p.set_defaults(handler=_check)

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
    if isinstance(result, int):  # a pass/fail command (check) reports only its exit code
        return result
    if getattr(args, "json", False):
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
