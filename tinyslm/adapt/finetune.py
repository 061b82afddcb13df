"""Fine-tune a trained language model into a classifier, with the one training loop.

    base run (an LM) --finetune--> classifier run (LM + head, or LM that writes the label)

Fine-tuning is training with a different :class:`~tinyslm.train.TrainingTask`: it starts from the
base run's weights and tokenizer, reads labelled examples instead of token windows, minimises a
classification loss, and, depending on the *strategy*, trains only part of the model:

=============== ======================================== ===========================================
strategy        trained                                  why
=============== ======================================== ===========================================
``full``        every weight                             the most capacity; the most memory, and the
                                                         easiest to overfit with little data
``last_blocks`` the last N blocks, final norm and head   the early layers' general features are kept;
                (N = 0: norm and head alone)             a cheap, strong baseline
``lora``        low-rank adapters and the head           a few % of the parameters; the base weights
                                                         stay untouched and shareable (Hu et al. 2021)
``probe``       the head alone, fitted in closed form    no training loop at all: one forward pass
                (``method="probe"``)                     over the data (:mod:`tinyslm.adapt.probe`)
=============== ======================================== ===========================================

Part of the training data (``val_fraction`` of each label, seeded) is held out: the training loop
reports its loss, and after training the classifier's accuracy on it is logged. A probe, whose
settings come from cross-validation rather than from a training loop, may hold out nothing
(``val_fraction=0``) and be fitted on every training text. The dataset's test split is never read
here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from tinyslm.adapt.classify import ADAPTERS_DIR, Classifier, ClassifierSpec, load_classifier
from tinyslm.adapt.data import (
    WORD_DROPOUT, ExampleBatches, pad_id_of, pad_sequences, split_examples, word_dropout_copies,
)
from tinyslm.adapt.generative import answer_ids, answer_loss, answer_windows, prompt_ids
from tinyslm.adapt.head import POOLINGS, SequenceClassifier, classification_loss
from tinyslm.adapt.lora import LoRAConfig, LoRAParam, apply_lora, merged_copy, save_adapters, trainable_count
from tinyslm.adapt.probe import PROMPT_TEMPLATE, ProbeClassifier, default_taps, fit_probe
from tinyslm.config import DataConfig, load_config
from tinyslm.data import load_labeled
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM
from tinyslm.train import MetricsLog, TrainingTask, TrainResult, load_run, save_run, train
from tinyslm.train.checkpoint import CONFIG_FILE, METRICS_FILE

# The fine-tuning schedule, applied over the base run's train section (``overrides`` win over it).
# Learning rates were chosen on the validation split (benchmarks/README.md, "Fine-tuning").
FINETUNE_TRAIN = ("train.batch_size=16", "train.grad_accum=1", "train.max_steps=300", "train.warmup_steps=30",
                  "train.decay_steps=null", "train.min_lr=0.0", "train.weight_decay=0.01", "train.eval_interval=50",
                  "train.log_interval=10", "train.ckpt_interval=100000", "train.samples=0")
LEARNING_RATES = {"full": 1e-3, "last_blocks": 2e-3, "lora": 3e-3}


@dataclass
class FinetuneResult:
    """A finished fine-tuning run: the loaded classifier, its validation scores and the training figures."""

    run_dir: Path
    classifier: Classifier
    val: dict | None  # accuracy, macro_f1, n on the held-out part of the training data (None: none held out)
    train: TrainResult

    def summary(self) -> dict:
        spec, val = self.classifier.spec, self.val or {}
        return {"run_dir": str(self.run_dir), "method": spec.method, "strategy": spec.strategy,
                "val_accuracy": val.get("accuracy"), "val_macro_f1": val.get("macro_f1"),
                "trainable_params": spec.trainable_params, "total_params": spec.total_params,
                "final_step": self.train.final_step, "train_loss": self.train.train_loss,
                "wall_s": round(self.train.wall_s, 2)}


def finetune(base_run: str | Path, out: str | Path, data: str = "symptom2disease", *, method: str = "head",
             pooling: str = "mean", lora: LoRAConfig | None = None, train_layers: int | None = None,
             max_len: int | None = None, val_fraction: float = 0.15, extra_data: str | None = None,
             taps: tuple[str, ...] | None = None, template: str | None = None, augment: int = 0,
             word_dropout: float = WORD_DROPOUT, overrides: tuple[str, ...] | list[str] = (),
             progress: bool = True) -> FinetuneResult:
    """Fine-tune the language model of ``base_run`` on dataset ``data``'s train split into run ``out``.

    ``method``: ``head`` (a label head on pooled hidden states), ``probe`` (logistic regression on
    the frozen model's hidden states at ``taps``) or ``generative`` (the LM learns to write the
    label). Strategy for ``head``: ``lora`` given -> LoRA; ``train_layers`` given -> the last N
    blocks; neither -> full fine-tuning. ``template`` wraps each text (``{text}`` marks where; a
    probe's default is :data:`~tinyslm.adapt.probe.PROMPT_TEMPLATE`, otherwise the bare text).
    ``max_len`` caps the tokens read per text (default: the longest training text, up to the
    model's context): shorter is faster and cuts long texts' ends. ``augment`` adds that many
    copies of every training text with each word dropped with probability ``word_dropout``
    (:func:`~tinyslm.adapt.data.word_dropout_copies`; validation texts stay whole). ``overrides`` are
    ``train.*=value`` settings (``train.lr=1e-3``) or ``model.dropout``.
    """
    if method not in ("head", "probe", "generative"):
        raise ConfigError(f"method must be 'head', 'probe' or 'generative', got {method!r}")
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if lora is not None and train_layers is not None:
        raise ConfigError("choose LoRA (--lora-rank) or the last blocks (--train-layers), not both")
    if method == "probe" and (lora is not None or train_layers is not None):
        raise ConfigError("a probe trains only its head on the frozen model: drop --lora-rank / --train-layers")
    if method == "probe" and overrides:
        raise ConfigError("--set tunes the training loop, and a probe has none (its fit is closed-form)")
    if val_fraction == 0 and method != "probe":
        raise ConfigError("--val-fraction 0 holds nothing out, and a training loop needs validation examples; "
                          "only --method probe can fit on every training text")
    if taps is not None and method != "probe":
        raise ConfigError("--taps applies to --method probe only")
    if template is not None and method == "generative":
        raise ConfigError("--template applies to --method head and probe; generative prompts are fixed")
    template = template or (PROMPT_TEMPLATE if method == "probe" else "{text}")
    if "{text}" not in template:
        raise ConfigError(f"--template must contain {{text}}, where each text goes; got {template!r}")
    strategy = ("probe" if method == "probe" else "lora" if lora is not None
                else "full" if train_layers is None else "last_blocks")
    base = load_run(base_run)
    n_layers = base.config.model.n_layers
    lowest = 1 if method == "generative" else 0  # a generative model has no head to train on its own
    if train_layers is not None and not lowest <= train_layers <= n_layers:
        raise ConfigError(f"--train-layers must be between {lowest} and {n_layers} "
                          f"(the base model has {n_layers} blocks), got {train_layers}")

    train_ex, val_ex = split_examples(load_labeled(data, "train"), val_fraction, seed=base.config.train.seed)
    labels = sorted({label for label, _ in train_ex})
    train_ex = train_ex + word_dropout_copies(train_ex, augment, word_dropout, seed=base.config.train.seed)
    if extra_data is not None:
        train_ex = train_ex + _extra_examples(extra_data, data, labels)
    # What the model reads: for head and probe, each text in its template (the spec keeps it for classify).
    train_in, val_in = ((part if method == "generative" else [(label, template.format(text=text)) for label, text in part])
                        for part in (train_ex, val_ex))
    encode = _encode_for_generation if method == "generative" else _encode_for_head
    max_len = min(_max_len(base, method, labels, train_in), max_len or base.config.model.max_seq_len)
    train_arrays = encode(base.tokenizer, labels, train_in, max_len)
    spec = ClassifierSpec(labels=tuple(labels), method=method, pooling=pooling, strategy=strategy,
                          train_layers=train_layers, lora=lora, max_len=max_len, template=template,
                          base_run=str(base_run), data=data, extra_data=extra_data, val_fraction=val_fraction,
                          augment=augment, word_dropout=word_dropout)
    if method == "probe":  # a run's data section needs a validation share; the spec keeps the true one (maybe 0)
        base_config = replace(base.config, data=DataConfig(name=data, val_fraction=val_fraction or DataConfig.val_fraction))
        return _fit_probe_run(base, base_config, out, spec, taps or default_taps(n_layers), train_arrays, val_ex,
                              progress)
    val_arrays = encode(base.tokenizer, labels, val_in, max_len)

    config = load_config(Path(base_run) / CONFIG_FILE, [*FINETUNE_TRAIN, f"train.lr={LEARNING_RATES[strategy]}",
                                                        f"train.seq_len={max_len}", *overrides])
    config = replace(config, data=DataConfig(name=data, val_fraction=val_fraction))
    trained_module: dict[str, nnx.Module] = {}  # the module being trained, adapters and all

    def init_model(config) -> nnx.Module:
        model = TransformerLM(config.model, rngs=nnx.Rngs(0))  # the base's shape; dropout may be overridden
        nnx.update(model, nnx.state(load_run(base_run).model))
        if method == "head":
            model = SequenceClassifier(model, len(labels), pooling, rngs=nnx.Rngs(config.train.seed))
        if lora is not None:
            apply_lora(model, lora.targets, lora.rank, lora.alpha, lora.dropout, seed=config.train.seed)
        trained_module["model"] = model
        return model

    trainable = _trainable_filter(strategy, method, n_layers, train_layers)
    task = TrainingTask(
        init_model=init_model, tokenizer=base.tokenizer, trainable=trainable,
        loss=classification_loss if method == "head" else answer_loss,
        batches=lambda run_dir, config: ExampleBatches(train_arrays, val_arrays, config.train.batch_size,
                                                       config.train.grad_accum, config.train.seed),
        saved=merged_copy if lora is not None else None,  # the run holds the merged model; adapters go to adapters/
    )
    result = train(config, out, task=task, progress=progress)

    model = trained_module["model"]
    if lora is not None:
        save_adapters(model, Path(out) / ADAPTERS_DIR)
    spec = replace(spec, trainable_params=trainable_count(model, trainable),
                   total_params=trainable_count(result.model, nnx.Param))
    return _finish(out, spec, val_ex, result)


def _fit_probe_run(base, config, out: str | Path, spec: ClassifierSpec, taps: tuple[str, ...], train_arrays: dict,
                   val_ex: list[tuple[str, str]], progress: bool) -> FinetuneResult:
    """Method ``probe``: one forward pass over the training texts, logistic regression, a classifier run."""
    start = time.perf_counter()
    model = ProbeClassifier(base.model, len(spec.labels), taps, rngs=nnx.Rngs(config.train.seed))
    bar = (lambda batches: tqdm(batches, desc="probe: reading hidden states", unit="batch")) if progress else None
    fit = fit_probe(model, train_arrays["tokens"], train_arrays["lengths"], train_arrays["labels"], progress=bar)
    wall_s = time.perf_counter() - start
    save_run(out, config, model, base.tokenizer)
    MetricsLog(Path(out) / METRICS_FILE).write("probe_fit", 0, **fit, wall_s=round(wall_s, 2))
    spec = replace(spec, taps=tuple(taps), trainable_params=model.label_head.kernel.size + model.label_head.bias.size,
                   total_params=trainable_count(model, nnx.Param))
    result = TrainResult(Path(out), config, model, base.tokenizer, final_step=0, train_loss=fit["train_loss"],
                         val_loss=None, wall_s=wall_s, tokens_per_s=float(train_arrays["lengths"].sum()) / wall_s)
    return _finish(out, spec, val_ex, result)


def _finish(out: str | Path, spec: ClassifierSpec, val_ex: list[tuple[str, str]], result: TrainResult) -> FinetuneResult:
    """Save the spec, reload the classifier from disk and log its accuracy on the held-out examples (if any)."""
    spec.save(out)
    classifier = load_classifier(out)
    if not val_ex:
        return FinetuneResult(Path(out), classifier, None, result)
    scores = classifier.evaluate(val_ex)
    val = {key: scores[key] for key in ("accuracy", "macro_f1", "n")}
    MetricsLog(Path(out) / METRICS_FILE).write("classify_val", result.final_step, **val)
    return FinetuneResult(Path(out), classifier, val, result)


def _extra_examples(extra_data: str, data: str, labels: list[str]) -> list[tuple[str, str]]:
    """The train split of ``extra_data``, checked to name only conditions that ``data`` has."""
    examples = load_labeled(extra_data, "train")
    unknown = sorted({label for label, _ in examples} - set(labels))
    if unknown:
        raise ConfigError(f"--extra-data {extra_data} has labels that {data} lacks: {unknown[:5]}; "
                          f"extra examples must share the label set")
    return examples


def _trainable_filter(strategy: str, method: str, n_layers: int, train_layers: int | None) -> Any:
    """The ``nnx`` filter of what a strategy trains (everything else stays frozen)."""
    head = nnx.PathContains("label_head")
    if strategy == "full":
        return nnx.Param
    if strategy == "lora":
        return nnx.Any(LoRAParam, head) if method == "head" else LoRAParam
    first_trained = n_layers - train_layers

    def last_blocks(path, value) -> bool:
        if not isinstance(value, nnx.Param):
            return False
        if "label_head" in path or "final_norm" in path:
            return True
        return "blocks" in path and path[path.index("blocks") + 1] >= first_trained

    return last_blocks


def _max_len(base, method: str, labels: list[str], examples: list[tuple[str, str]]) -> int:
    """The padded length: the longest training text (or prompt + answer), capped by the model's context."""
    context = base.config.model.max_seq_len
    if method != "generative":
        return min(context, max(len(base.tokenizer.encode(text)) for _, text in examples))
    longest_answer = max(len(answer_ids(base.tokenizer, label)) for label in labels)
    longest = max(len(prompt_ids(base.tokenizer, text, 10**9)) for _, text in examples) + longest_answer
    return min(context, longest - 1)  # a window of prompt + answer holds max_len + 1 tokens


def _encode_for_head(tokenizer, labels: list[str], examples: list[tuple[str, str]], max_len: int) -> dict:
    tokens, lengths = pad_sequences([tokenizer.encode(text) for _, text in examples], max_len, pad_id_of(tokenizer))
    index = {label: i for i, label in enumerate(labels)}
    return {"tokens": tokens, "lengths": lengths, "labels": np.array([index[label] for label, _ in examples], np.int32)}


def _encode_for_generation(tokenizer, labels: list[str], examples: list[tuple[str, str]], max_len: int) -> dict:
    answers = {label: answer_ids(tokenizer, label) for label in labels}
    room = max_len + 1 - max(map(len, answers.values()))
    prompts = [prompt_ids(tokenizer, text, room) for _, text in examples]
    windows, mask = answer_windows(prompts, [answers[label] for label, _ in examples], max_len, pad_id_of(tokenizer))
    return {"windows": windows, "mask": mask}
