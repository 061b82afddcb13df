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
  tinyslm quantize --run runs/default --bits 8 --out runs/default-int8
  tinyslm prune --run runs/default --method structured --sparsity 0.25 --recover-steps 40 --out runs/default-small
  tinyslm rag --run runs/smollm2 --docs diseases_symptoms --question "What are the symptoms of gout?"
  tinyslm distill --teacher runs/ts-teacher --config configs/tinystories_student.yaml --out runs/ts-student
  tinyslm finetune --run runs/default --task classify --data symptom2disease --lora-rank 8 --out runs/cls-lora
  tinyslm classify --run runs/cls-lora --text "My skin is red, itchy and flaking"
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


def _rag(args: argparse.Namespace) -> dict:
    import time

    from tinyslm.rag import NOTICE, BM25Retriever, DenseRetriever, answer_questions, load_documents
    from tinyslm.train import load_run

    if not args.question.strip():
        raise TinySLMError("--question is empty; ask something")
    if args.docs is None and not args.no_retrieval:
        raise TinySLMError("--docs is needed to retrieve passages (a dataset name or a path); "
                           "or pass --no-retrieval to let the model answer from memory")
    run = load_run(args.run)
    retriever, index_ms = None, 0.0
    if not args.no_retrieval:
        store = load_documents(args.docs)
        start = time.perf_counter()
        retriever = (BM25Retriever(store) if args.retriever == "bm25"
                     else DenseRetriever(run.model, run.tokenizer, store, progress=True))
        index_ms = 1000 * (time.perf_counter() - start)
        print(f"Indexed {len(store)} passages of {store.source} with {args.retriever} in {index_ms:.0f} ms",
              file=sys.stderr)
    [answer] = answer_questions(run.model, run.tokenizer, [args.question], retriever, k=args.k,
                                max_new_tokens=args.max_new_tokens, max_prompt_tokens=args.max_prompt_tokens,
                                **({} if args.min_score_ratio is None else {"min_score_ratio": args.min_score_ratio}))
    print(NOTICE)
    for hit in answer.hits:
        print(f"  [{hit.passage.id}] {hit.passage.title} (score {hit.score:.3f})")
    if answer.trimmed:
        print("  (the last passage was cut short to fit the context)")
    print(answer.text)
    print(f"retrieval {answer.retrieval_ms:.1f} ms · prompt {answer.prompt_tokens} tokens · "
          f"{answer.new_tokens} new tokens · prefill {answer.prefill_ms:.0f} ms · "
          f"{answer.tokens_per_s or 0:.1f} tok/s · finished: {answer.finish_reason}", file=sys.stderr)
    return {**answer.summary(), "retriever": None if args.no_retrieval else args.retriever,
            "index_ms": round(index_ms, 1)}


def _distill(args: argparse.Namespace) -> dict:
    from tinyslm.compress.distill import DistillConfig, distill, read_settings
    from tinyslm.config import load_config
    from tinyslm.data import load_tokens
    from tinyslm.train import load_run
    from tinyslm.train.checkpoint import CONFIG_FILE, DATA_DIR
    from tinyslm.train.evaluate import evaluate_tokens

    out = Path(args.out)
    if args.resume:
        teacher, student_from, settings = read_settings(out)
        config = load_config(out / CONFIG_FILE, args.set)
    else:
        if not args.teacher:
            raise TinySLMError("--teacher is needed: the trained run the student learns from")
        teacher, student_from = Path(args.teacher), Path(args.init) if args.init else None
        settings = DistillConfig(temperature=args.temperature, alpha=args.alpha, divergence=args.divergence,
                                 features=[_layer_pair(text) for text in args.features],
                                 feature_loss=args.feature_loss, feature_weight=args.feature_weight)
        config_file = args.config or (student_from / CONFIG_FILE if student_from else None)
        config = load_config(config_file, args.set)
    print(f"Distilling {teacher} into {out} (T={settings.temperature}, alpha={settings.alpha}, "
          f"{settings.divergence} KL" + (f", features {settings.features}" if settings.features else "") + ")",
          file=sys.stderr)
    result = distill(config, teacher, out, settings, student_from=student_from, resume=args.resume,
                     progress=not args.no_progress)
    # the trainer's val loss is the distillation objective; the student's own next-token loss is what counts
    val_tokens = load_tokens(out / DATA_DIR, "val")
    student = evaluate_tokens(result.model, val_tokens, seq_len=config.train.seq_len)
    teacher_eval = evaluate_tokens(load_run(teacher).model, val_tokens, seq_len=config.train.seq_len)
    print(f"\nDone: step {result.final_step}, {result.wall_s:.0f} s. On every validation token: student loss "
          f"{student['val_loss']:.4f} (perplexity {student['perplexity']:.2f}), teacher {teacher_eval['val_loss']:.4f}")
    print(f"Run directory: {out}  (a normal run of the student: tinyslm eval / generate load it)")
    if not result.interrupted and config.train.samples > 0:
        _print_samples(result, config.train)
    return {**result.summary(), "objective_val_loss": result.val_loss, "val_loss": student["val_loss"],
            "perplexity": student["perplexity"], "teacher_val_loss": teacher_eval["val_loss"]}


def _layer_pair(text: str) -> tuple[int, int]:
    """'1:3' -> (1, 3): student block 1 is matched to teacher block 3."""
    try:
        student_layer, teacher_layer = (int(part) for part in text.split(":"))
    except ValueError:
        raise TinySLMError(f"--features {text!r}: expected STUDENT_LAYER:TEACHER_LAYER, e.g. 1:3 (-1 = last block)") from None
    return student_layer, teacher_layer


def _finetune(args: argparse.Namespace) -> dict:
    from tinyslm.adapt import NOTICE, LoRAConfig, finetune

    lora = None
    if args.lora_rank is not None:
        lora = LoRAConfig(rank=args.lora_rank, alpha=args.lora_alpha or 2.0 * args.lora_rank,
                          dropout=args.lora_dropout, targets=tuple(args.lora_targets.split(",")))
    if args.word_dropout is not None and not args.augment:
        raise TinySLMError("--word-dropout sets how --augment makes its copies: add --augment N")
    print(f"Fine-tuning {args.run} on {args.data} ({args.method}) into {args.out}", file=sys.stderr)
    result = finetune(args.run, args.out, args.data, method=args.method, pooling=args.pooling, lora=lora,
                      train_layers=args.train_layers, val_fraction=args.val_fraction, extra_data=args.extra_data,
                      taps=args.taps.split(",") if args.taps else None, template=args.template,
                      augment=args.augment, overrides=args.set, progress=not args.no_progress,
                      **({} if args.word_dropout is None else {"word_dropout": args.word_dropout}))
    summary = result.summary()
    share = summary["trainable_params"] / summary["total_params"]
    print(f"\nDone: {summary['strategy']} fine-tuning, {summary['trainable_params']:,} of "
          f"{summary['total_params']:,} parameters trained ({share:.2%}), {summary['wall_s']:.0f} s")
    if result.val is None:
        print("Validation: none (--val-fraction 0: fitted on every training example)")
    else:
        print(f"Validation ({result.val['n']} held-out training examples): accuracy {result.val['accuracy']:.3f} · "
              f"macro-F1 {result.val['macro_f1']:.3f}")
    print(f"Run directory: {args.out}; try: tinyslm classify --run {args.out} --text \"...\"  ({NOTICE})")
    return {**summary, "notice": NOTICE}


def _classify(args: argparse.Namespace) -> dict:
    from tinyslm.adapt import NOTICE, load_classifier, plot_confusion

    classifier = load_classifier(args.run)
    if args.text is not None:
        if not args.text.strip():
            raise TinySLMError("--text is empty; describe the symptoms")
        ranked = classifier.top_k(args.text, args.top_k)
        for label, probability in ranked:
            print(f"  {probability:6.1%}  {label}")
        print(f"({NOTICE})")
        return {"text": args.text, "predictions": [{"label": label, "probability": p} for label, p in ranked],
                "notice": NOTICE}
    examples = _read_labeled_csv(Path(args.csv))
    scores = classifier.evaluate(examples)
    plot = Path(args.plot) if args.plot else Path(args.run) / f"confusion_{Path(args.csv).stem}.png"
    plot_confusion(scores["confusion"], classifier.labels, plot,
                   title=f"{Path(args.run).name} on {Path(args.csv).name}: accuracy {scores['accuracy']:.3f}")
    print(f"{args.csv}: {scores['n']} texts · accuracy {scores['accuracy']:.3f} · macro-F1 {scores['macro_f1']:.3f}")
    print(f"Confusion matrix: {plot}  ({NOTICE})")
    return {"csv": args.csv, "n": scores["n"], "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
            "confusion_png": str(plot), "notice": NOTICE}


def _read_labeled_csv(path: Path) -> list[tuple[str, str]]:
    """(label, text) rows of a CSV file with ``label`` and ``text`` columns."""
    import csv

    if not path.is_file():
        raise TinySLMError(f"--csv {path}: file not found")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not {"label", "text"} <= set(reader.fieldnames or ()):
            raise TinySLMError(f"--csv {path}: needs a header with 'label' and 'text' columns, got {reader.fieldnames}")
        rows = [(row["label"], row["text"]) for row in reader]
    if not rows:
        raise TinySLMError(f"--csv {path}: no rows under the header")
    return rows


def _quantize(args: argparse.Namespace) -> dict:
    from tinyslm.compress.calibrate import calibration_windows
    from tinyslm.compress.gptq import gptq_model
    from tinyslm.compress.qat import quantization_aware_training
    from tinyslm.compress.quantize_report import (
        compare_quality, decode_tokens_per_s, disk_bytes, held_out_tokens, plot_size_vs_perplexity, save_quantized,
        size_row,
    )
    from tinyslm.compress.quantized import quantize_model
    from tinyslm.config import DataConfig, QuantizationConfig
    from tinyslm.train import load_run
    from tinyslm.train.checkpoint import CONFIG_FILE

    run = load_run(args.run)
    out = Path(args.out)
    if run.config.quantization is not None:
        raise TinySLMError(f"{args.run} is already quantized; quantize the float run it came from")
    if (out / CONFIG_FILE).exists():
        raise TinySLMError(f"{out} already holds a run; choose another --out")
    if args.gptq and args.qat_steps:
        raise TinySLMError("--gptq and --qat-steps are two ways to the same end; choose one")
    granularity = "group" if args.group_size else ("tensor" if args.per_tensor else "channel")
    config = QuantizationConfig(bits=args.bits, granularity=granularity, group_size=args.group_size or 32,
                                scale_dtype=args.scale_dtype, embeddings=not args.no_embeddings,
                                scheme="asymmetric" if args.asymmetric else "symmetric")
    name = f"int{args.bits} " + (f"g{args.group_size}" if args.group_size else granularity)
    name += " asym" if args.asymmetric else ""
    variants = {name: quantize_model(run.model, config)}
    if args.gptq:
        windows = calibration_windows(run.path, args.calibration, run.config.train.seq_len, data=args.data)
        print(f"GPTQ on {windows.size:,} calibration tokens", file=sys.stderr)
        variants[f"{name} GPTQ"] = gptq_model(run.model, windows, config)
    if args.qat_steps:
        print(f"Quantization-aware training for {args.qat_steps} steps into {out / 'qat'}", file=sys.stderr)
        data = DataConfig(name=args.data) if args.data else None
        latent = quantization_aware_training(run, config, out / "qat", args.qat_steps, lr=args.qat_lr, data=data,
                                             progress=not args.no_progress)
        variants[f"{name} QAT"] = quantize_model(latent, config)
    final_name, final = list(variants.items())[-1]
    save_quantized(out, run, config, final, {"source_run": str(run.path), "qat_steps": args.qat_steps,
                                             "gptq_calibration_windows": args.calibration if args.gptq else 0})

    tokens = held_out_tokens(run, args.data, args.eval_tokens)
    quality = compare_quality(run.model, variants, tokens, run.config.train.seq_len)
    rows = []
    for variant, model in [("fp32", run.model), *variants.items()]:
        row = {"variant": variant, **size_row(model), **quality["reference" if model is run.model else variant]}
        if args.decode_tokens:
            prompt = [int(t) for t in tokens[:16]]
            row["tokens_per_s"] = round(decode_tokens_per_s(model, prompt, args.decode_tokens), 1)
        rows.append(row)
    rows[-1]["bytes_on_disk"] = disk_bytes(out)
    plot = plot_size_vs_perplexity(rows, out / "quantization.png", title=f"{run.path.name}: size vs perplexity")
    print(f"{'variant':<20} {'bits/w':>7} {'MB':>8} {'perplexity':>10} {'mean KL':>8} {'top-1':>7} {'tok/s':>7}")
    for row in rows:
        print(f"{row['variant']:<20} {row['bits_per_weight']:>7.2f} {row['weight_bytes'] / 1e6:>8.2f} "
              f"{row['perplexity']:>10.3f} {row['mean_kl']:>8.4f} {row['top1_agreement']:>7.1%} "
              f"{row.get('tokens_per_s', float('nan')):>7.1f}")
    print(f"Saved {final_name} to {out} ({rows[-1]['bytes_on_disk']:,} bytes of checkpoint); plot: {plot}; "
          f"{len(tokens):,} held-out tokens")
    return {"run_dir": str(out), "eval_tokens": int(len(tokens)), "variants": rows}


def _prune(args: argparse.Namespace) -> dict:
    from tinyslm.compress.prune_run import PruneSpec, plot_sweep, prune_run, sweep

    if args.sweep:
        sparsities = [float(s) for s in args.sweep.split(",")]
        variants = sweep(args.run, sparsities, n_calibration=args.calibration, data=args.data,
                         eval_tokens=args.eval_tokens)
        plot = Path(args.plot or Path(args.run) / "prune_sweep.png")
        plot_sweep(variants, plot, title=f"pruning {Path(args.run).name} (no recovery)")
        _print_prune_table(variants)
        print(f"Plot: {plot}")
        return {"run_dir": args.run, "plot": str(plot), "variants": variants}
    if not args.method or not args.out:
        raise TinySLMError("prune needs --method and --out (or --sweep S1,S2,... to compare methods without writing a run)")
    n, _, m = args.nm.partition(":")
    if not (n.isdigit() and m.isdigit()):
        raise TinySLMError(f"--nm: expected N:M such as 2:4, got {args.nm!r}")
    spec = PruneSpec(args.method, args.sparsity, nm=(int(n), int(m)), score=args.score, scope=args.scope,
                     drop_layers=args.drop_layers, sequential=args.sequential)
    report = prune_run(args.run, args.out, spec, recover_steps=args.recover_steps, recover_lr=args.recover_lr,
                       n_calibration=args.calibration, decode_tokens=args.decode_tokens, data=args.data,
                       eval_tokens=args.eval_tokens, progress=not args.no_progress)
    _print_prune_table(report["variants"])
    print(f"Wrote {args.out} (report: {args.out}/prune_report.json); try: tinyslm generate --run {args.out} --prompt ...")
    return report


def _print_prune_table(variants: list[dict]) -> None:
    print(f"{'variant':<36} {'params':>10} {'nonzero':>10} {'MB':>7} {'sparsity':>8} {'ppl':>8} {'tok/s':>8}")
    for v in variants:
        print(f"{v['name']:<36} {v['params']:>10,} {v['nonzero_params']:>10,} {v['bytes'] / 1e6:>7.2f} "
              f"{v['sparsity']:>8.1%} {v['perplexity']:>8.3f} {v.get('tokens_per_s', float('nan')):>8.1f}")


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

    p = commands.add_parser(
        "rag", help="answer a question with passages retrieved from documents (retrieval-augmented generation)",
        description="Retrieve the passages most relevant to a question (BM25 or dense embeddings), put them in the "
        "model's chat prompt, and generate the answer greedily. Prints the passages used (with ids), the answer "
        "and the timings. A teaching demo, not medical advice.",
        epilog="""examples:
  tinyslm rag --run runs/smollm2 --docs diseases_symptoms --question "What are the symptoms of gout?"
  tinyslm rag --run runs/smollm2 --docs diseases_symptoms --question "What are the symptoms of gout?" --no-retrieval
  tinyslm rag --run runs/smollm2 --docs my_notes/ --question "..." --retriever dense --k 5 --json

--docs takes a dataset name (diseases_symptoms: one passage per condition) or a .csv file (one passage
per row), a .txt/.md file or a folder of them (split into paragraphs of at most 120 words).
runs/smollm2 comes from `tinyslm import-gguf` (see the README: SmolLM2-135M-Instruct, offline).""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run directory of the model that answers (and embeds, for dense)")
    p.add_argument("--docs", metavar="NAME_OR_PATH", help="documents to search: dataset name, .csv, .txt/.md or folder")
    p.add_argument("--question", required=True, help="the question to answer")
    p.add_argument("--k", type=int, default=3, help="passages to retrieve (fewer are used if they do not fit)")
    p.add_argument("--retriever", choices=("bm25", "dense"), default="bm25",
                   help="bm25: shared words (fast); dense: cosine of the model's mean-pooled hidden states")
    p.add_argument("--min-score-ratio", type=float,
                   help="drop passages scoring below this fraction of the best one (default 0.5; 0 keeps all k)")
    p.add_argument("--no-retrieval", action="store_true", help="ask the model alone, to compare")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--max-prompt-tokens", type=int, help="cap the prompt below the context minus the answer budget")
    p.add_argument("--json", action="store_true", help="answer, passages, retrieval_ms, prompt_tokens, timings")
    p.set_defaults(handler=_rag)

    p = commands.add_parser(
        "distill", help="train a small student on a trained teacher's predictions (knowledge distillation)",
        description="Train a student model (from --config, or starting from the run --init) to match a trained "
        "teacher's next-token distributions at a temperature (Hinton et al. 2015), mixed with the ordinary "
        "next-token loss, and optionally its hidden states (FitNets). Writes a normal run directory of the student.",
        epilog="""examples:
  tinyslm train --config configs/tinystories_teacher.yaml --out runs/ts-teacher
  tinyslm distill --teacher runs/ts-teacher --config configs/tinystories_student.yaml --out runs/ts-student
  tinyslm distill --teacher runs/ts-teacher --config configs/tinystories_student.yaml --temperature 4 --alpha 0.9 \\
      --divergence reverse --features 1:1 3:3 --feature-loss cosine --out runs/ts-student-f
  tinyslm distill --teacher runs/ts-teacher --init runs/ts-pruned --set train.max_steps=300 --out runs/ts-recovered
  tinyslm distill --out runs/ts-student --resume          continue an interrupted distillation

The student uses the teacher's tokenizer, so its config's tokenizer section must match the teacher's.
--alpha 0 is plain training; --alpha 1 learns from the teacher alone. --init starts the student from a run's
weights (e.g. a structurally pruned teacher: Minitron's prune-then-distill) and uses that run's config.""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", help="run directory of the trained teacher")
    p.add_argument("--config", help="the student's YAML config (model, data, train); default: --init's, else built-in")
    p.add_argument("--init", metavar="RUN", help="start the student from this run's weights instead of random ones")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_steps=500 (repeatable)")
    p.add_argument("--temperature", type=float, default=2.0, help="softens both distributions (default 2)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term vs cross-entropy (default 0.5)")
    p.add_argument("--divergence", choices=("forward", "reverse"), default="forward",
                   help="forward KL(teacher||student) (Hinton) or reverse KL(student||teacher) (MiniLLM)")
    p.add_argument("--features", nargs="+", default=[], metavar="S:T",
                   help="also match the hidden states after student block S and teacher block T (e.g. 1:3 -1:-1)")
    p.add_argument("--feature-loss", choices=("mse", "cosine"), default="mse")
    p.add_argument("--feature-weight", type=float, default=1.0, help="weight of the feature term (default 1)")
    p.add_argument("--out", required=True, help="run directory for the student, e.g. runs/student")
    p.add_argument("--resume", action="store_true", help="continue the distillation in --out from its latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help="final_step, val_loss (the student, every validation token), teacher_val_loss, wall_s, ...")
    p.set_defaults(handler=_distill)

    p = commands.add_parser(
        "finetune", help="fine-tune a trained language model into a text classifier (full, last blocks, LoRA, probe)",
        description="Turn the language model of a run into a classifier of a labelled dataset's texts: a label\n"
        "head on its pooled hidden states (--method head) or a model that writes the label after\n"
        "'Condition:' (--method generative). Trains every weight by default, the last N blocks with\n"
        "--train-layers N (0: the head alone), or low-rank adapters with --lora-rank R (Hu et al. 2021).\n"
        "--method probe trains nothing in the model: it reads the frozen model's hidden states at --taps\n"
        "once and fits logistic regression on them (seconds to minutes on a CPU, even for SmolLM2).\n"
        "15% of each label of the training split is held out for validation (paraphrases kept together);\n"
        "the test split is never read. A teaching model, not medical advice.",
        epilog="""examples:
  tinyslm train --out runs/default                                   the base model first
  tinyslm finetune --run runs/default --task classify --data symptom2disease --out runs/cls-full
  tinyslm finetune --run runs/default --task classify --data symptom2disease --lora-rank 8 --out runs/cls-lora
  tinyslm finetune --run runs/default --task classify --data symptom2disease --train-layers 1 --out runs/cls-last
  tinyslm finetune --run runs/default --task classify --data symptom2disease --method generative --out runs/cls-gen
  tinyslm finetune --run runs/smollm2 --task classify --method probe --out runs/cls-probe   (taps last@24,mean@3)
  tinyslm finetune --run runs/smollm2 --task classify --method probe --augment 8 --out runs/cls-probe-aug
  tinyslm finetune --run runs/default --task classify --set train.max_steps=600 --set train.lr=5e-4 --out runs/c2

Then: tinyslm classify --run runs/cls-lora --text "My skin is red and itchy" or --csv test.csv.""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="the base run: a trained language model, e.g. runs/default")
    p.add_argument("--task", choices=("classify",), default="classify", help="what to fine-tune for (classify)")
    p.add_argument("--data", default="symptom2disease", help="a labelled dataset: symptom2disease (default) or symptoms")
    p.add_argument("--method", choices=("head", "probe", "generative"), default="head",
                   help="head: a label head on pooled hidden states; probe: logistic regression on the frozen "
                   "model's hidden states; generative: score each label as the continuation")
    p.add_argument("--pooling", choices=("last", "mean"), default="mean", help="head only: mean of the real tokens' "
                   "hidden states (default) or the last real token's")
    p.add_argument("--lora-rank", type=int, metavar="R", help="train rank-R LoRA adapters (and the head) only")
    p.add_argument("--lora-alpha", type=float, help="LoRA scale numerator (default 2 x rank)")
    p.add_argument("--lora-dropout", type=float, default=0.0, help="dropout on the adapters' input (default 0)")
    p.add_argument("--lora-targets", default="q,k,v,o", help="projections to adapt, from q,k,v,o,gate,up,down")
    p.add_argument("--train-layers", type=int, metavar="N", help="train only the last N blocks (+ final norm, head)")
    p.add_argument("--taps", metavar="POOL@LAYER,...", help="probe only: what to read, e.g. last@24,mean@3 (layer 0 = "
                   "embeddings, i = after block i; default: last at 80%% of the depth, mean at 10%%)")
    p.add_argument("--template", help="head and probe: wrap each text, {text} marks where (probe default: "
                   "'This patient\'s description: \"{text}\" means in one word: \"')")
    p.add_argument("--augment", type=int, default=0, metavar="N", help="also train on N copies of every training "
                   "text with words dropped at random (default 0; the probe on SmolLM2 gained on cross-validation "
                   "with 8; N times slower to read)")
    p.add_argument("--word-dropout", type=float, metavar="P",
                   help="with --augment: the chance that each word is dropped from a copy (default 0.15)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of each label held out for validation "
                   "(default 0.15); probe only: 0 fits on every training text, for settings chosen by cross-validation")
    p.add_argument("--extra-data", metavar="NAME", help="also train on this labelled dataset's train split, e.g. "
                   "symptoms (generated descriptions of the same conditions); validation stays on --data")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the fine-tuning schedule, e.g. --set train.lr=1e-3 (repeatable)")
    p.add_argument("--out", required=True, help="run directory of the classifier, e.g. runs/cls-lora")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="val_accuracy, val_macro_f1, trainable_params, total_params, ...")
    p.set_defaults(handler=_finetune)

    p = commands.add_parser(
        "classify", help="classify a text (top 3) or score a labelled CSV with a fine-tuned classifier",
        description="With --text: the most likely labels and their probabilities. With --csv (columns\n"
        "label,text): accuracy, macro-F1 and a confusion-matrix PNG. A teaching model, not medical advice.",
        epilog="""examples:
  tinyslm classify --run runs/cls-lora --text "I have a high fever, chills and a headache behind my eyes"
  tinyslm classify --run runs/cls-lora --csv ../shared/data/symptom2disease/test.csv --json""",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a classifier run from `tinyslm finetune`")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="one description to classify")
    what.add_argument("--csv", help="a CSV file with label and text columns to evaluate on")
    p.add_argument("--top-k", type=int, default=3, help="--text: how many labels to show (default 3)")
    p.add_argument("--plot", help="--csv: where to write the confusion matrix (default: RUN/confusion_<csv name>.png)")
    p.add_argument("--json", action="store_true", help="predictions (--text) or accuracy, macro_f1, confusion_png")
    p.set_defaults(handler=_classify)

    p = commands.add_parser(
        "quantize", help="int8 / int4 weights (post-training, or quantization-aware) and a size-vs-quality report",
        description="Quantize a run's weights to int8 or int4 with symmetric absmax scales, or asymmetric min-max "
        "scales and offsets (--asymmetric), per output channel or per group of inputs, optionally after "
        "quantization-aware training or GPTQ's error-compensating rounding (--gptq), and save the quantized model as a new "
        "run that `generate` and `eval` load. Prints one row per variant (fp32 included): bits per weight, size, "
        "held-out perplexity, mean KL and top-1 agreement against fp32, and batch-1 decoding tokens/s.",
        epilog="examples:\n"
        "  tinyslm quantize --run runs/shakespeare_char --bits 8 --out runs/shakespeare_char-int8\n"
        "  tinyslm quantize --run runs/shakespeare_char --bits 4 --group-size 32 --out runs/sc-int4\n"
        "  tinyslm quantize --run runs/smollm2 --bits 4 --group-size 32 --asymmetric --data tinystories "
        "--out runs/smollm2-q4g32a\n"
        "  tinyslm quantize --run runs/shakespeare_char --bits 4 --group-size 32 --qat-steps 300 --out runs/sc-qat\n"
        "  tinyslm quantize --run runs/smollm2 --bits 8 --data tinystories --eval-tokens 8192 --out runs/smollm2-int8\n"
        "  tinyslm quantize --run runs/smollm2 --bits 8 --gptq --data tinystories --out runs/smollm2-int8-gptq\n"
        "  tinyslm generate --run runs/sc-int4 --prompt ROMEO:",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="the float run to quantize, e.g. runs/default")
    p.add_argument("--bits", type=int, choices=(8, 4), required=True, help="bits per weight: 8 (int8) or 4 (packed int4)")
    p.add_argument("--group-size", type=int, help="one scale per G inputs of each output channel (32, 64, 128; "
                   "default: one scale per output channel)")
    p.add_argument("--per-tensor", action="store_true", help="one scale per weight matrix (the crudest; for comparison)")
    p.add_argument("--asymmetric", action="store_true", help="unsigned codes with a scale AND an offset (the "
                   "minimum) per channel/group: w ~ q*s + m, like llama.cpp's Q4_1; fits skewed weights, costs one "
                   "more float per group (int4 g32: 5.0 instead of 4.5 bits per weight)")
    p.add_argument("--scale-dtype", choices=("float16", "float32"), default="float16",
                   help="dtype of the scales (and offsets)")
    p.add_argument("--no-embeddings", action="store_true", help="keep the token embedding and output head in float32")
    p.add_argument("--qat-steps", type=int, default=0, help="quantization-aware training steps before exporting "
                   "(the training run is kept in OUT/qat)")
    p.add_argument("--qat-lr", type=float, default=1e-4, help="peak learning rate of quantization-aware training")
    p.add_argument("--gptq", action="store_true", help="round the block linears with GPTQ (Frantar et al. 2022): "
                   "each rounding error is compensated by the weights not yet rounded, steered by XᵀX of the "
                   "layer's inputs on calibration text; same format and speed as plain rounding, lower error")
    p.add_argument("--calibration", type=int, default=128, help="--gptq: calibration windows of training text "
                   "(default 128)")
    p.add_argument("--data", help="dataset for evaluation, calibration and QAT (default: the run's own data; an "
                   "imported model needs one, e.g. tinystories)")
    p.add_argument("--eval-tokens", type=int, help="evaluate on only the first N held-out tokens (default: all)")
    p.add_argument("--decode-tokens", type=int, default=64, help="tokens to time decoding with (0 skips the timing)")
    p.add_argument("--out", required=True, help="run directory to create for the quantized model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar during QAT")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line (variants: one row each)")
    p.set_defaults(handler=_quantize)

    p = commands.add_parser(
        "prune", help="zero the least important weights, or remove whole heads, neurons and layers",
        description="Prune a trained run into a new run and report parameters, bytes, sparsity, validation "
        "perplexity (before and after recovery fine-tuning) and decode tokens/s. magnitude and wanda zero "
        "individual weights (the model keeps its shape and speed); nm zeroes N of every M (2:4 is what sparse "
        "GPU tensor cores accelerate); structured removes heads and MLP neurons (and --drop-layers blocks), "
        "giving a smaller, faster dense model. Calibration uses the run's own training data (or --data NAME's, "
        "for an imported model), measured one-shot on the dense model or, with --sequential, block by block.",
        epilog="examples:\n"
        "  tinyslm prune --run runs/shakespeare_char --method wanda --sparsity 0.5 --out runs/sc-wanda50\n"
        "  tinyslm prune --run runs/shakespeare_char --method nm --nm 2:4 --score wanda --out runs/sc-2of4\n"
        "  tinyslm prune --run runs/shakespeare_char --method magnitude --scope global --sparsity 0.5 "
        "--recover-steps 100 --out runs/sc-mag50\n"
        "  tinyslm prune --run runs/shakespeare_char --method structured --sparsity 0.25 --recover-steps 100 "
        "--out runs/sc-small\n"
        "  tinyslm prune --run runs/shakespeare_char --method wanda --sequential --out runs/sc-wanda50-seq\n"
        "  tinyslm prune --run runs/smollm2 --method structured --sparsity 0.25 --data tinystories "
        "--eval-tokens 4096 --out runs/smollm2-small\n"
        "  tinyslm prune --run runs/shakespeare_char --sweep 0.1,0.3,0.5,0.7      perplexity vs sparsity plot",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="the trained run to prune, e.g. runs/shakespeare_char")
    p.add_argument("--method", choices=("magnitude", "wanda", "nm", "structured"))
    p.add_argument("--sparsity", type=float, default=0.5, help="fraction of block weights to zero (magnitude, "
                   "wanda), or of heads and of MLP neurons to remove (structured); default 0.5")
    p.add_argument("--nm", default="2:4", help="the N:M pattern of --method nm: keep N of every M weights (2:4, 4:8)")
    p.add_argument("--score", choices=("wanda", "magnitude"), default="wanda", help="how --method nm ranks weights")
    p.add_argument("--scope", choices=("output", "layer", "global"), help="which weights compete: per output "
                   "(wanda's default), per layer (magnitude's default) or across all layers")
    p.add_argument("--drop-layers", type=int, default=0, help="structured: also remove the K least influential blocks")
    p.add_argument("--sequential", action="store_true", help="wanda scores: calibrate block by block, each block "
                   "on the output of the already pruned blocks before it (the paper's procedure)")
    p.add_argument("--recover-steps", type=int, default=0, help="fine-tune the pruned model this many steps "
                   "(pruned weights stay zero); the run's own data (or --data) and batch size")
    p.add_argument("--recover-lr", type=float, help="peak learning rate of recovery (default: a tenth of the run's)")
    p.add_argument("--calibration", type=int, default=128, help="calibration windows of training text "
                   "(the run's data/train.bin, or --data)")
    p.add_argument("--data", help="calibrate on this dataset's training part and measure on its held-out end "
                   "(for a run with no data/ of its own, e.g. an imported SmolLM2: --data tinystories)")
    p.add_argument("--eval-tokens", type=int, help="measure perplexity on only the first N held-out tokens")
    p.add_argument("--decode-tokens", type=int, default=128, help="tokens to time decoding with (0 skips the timing)")
    p.add_argument("--sweep", metavar="S1,S2,...", help="instead of writing a run: magnitude, wanda and structured "
                   "at each sparsity plus 2:4, and a perplexity-vs-sparsity plot")
    p.add_argument("--plot", help="where --sweep draws its plot (default: RUN/prune_sweep.png)")
    p.add_argument("--out", help="run directory to create for the pruned model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar during recovery")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line (variants: one row each)")
    p.set_defaults(handler=_prune)

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
