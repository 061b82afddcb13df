"""A classifier run: the run directory of a fine-tuned classifier, loading it, predicting, evaluating.

A classifier is a run directory like any other (config.yaml, tokenizer/, checkpoints/,
metrics.jsonl, loss.png), plus ``classifier.yaml``: the label set in the order of the model's
outputs, the method, the pooling, how it was fine-tuned and from which base run::

    runs/symptoms-lora/
      config.yaml        the language model's shape and the fine-tuning schedule
      classifier.yaml    labels, method (head | probe | generative), pooling, strategy, lora, max_len, ...
      tokenizer/         the base run's tokenizer (the embedding rows belong to its ids)
      checkpoints/       step_N/: the classifier's weights (adapters merged in)
      adapters/          LoRA runs only: the adapters on their own, a few hundred KB
      metrics.jsonl, loss.png

Three methods, one interface (:class:`Classifier`):

* ``head`` — a :class:`~tinyslm.adapt.head.SequenceClassifier` (the LM plus a label head);
* ``probe`` — a :class:`~tinyslm.adapt.probe.ProbeClassifier` (a frozen LM read at chosen layers,
  logistic regression on top), texts wrapped in ``template`` first;
* ``generative`` — a plain language model that writes the label after ``Condition:``, scored label
  by label (:mod:`tinyslm.adapt.generative`). Its run is an ordinary LM run too:
  ``tinyslm generate`` works on it.

**A teaching model, not medical advice**: every result carries :data:`NOTICE`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import yaml
from flax import nnx

from tinyslm.adapt.data import WORD_DROPOUT, map_length_buckets, pad_id_of, pad_sequences
from tinyslm.adapt.generative import answer_ids, label_log_likelihoods, prompt_ids
from tinyslm.adapt.head import SequenceClassifier
from tinyslm.adapt.lora import LoRAConfig
from tinyslm.adapt.metrics import classification_scores
from tinyslm.adapt.probe import ProbeClassifier
from tinyslm.config import RunConfig, load_config
from tinyslm.errors import CheckpointError, DataError
from tinyslm.model import TransformerLM
from tinyslm.tokenizer import Tokenizer, load_tokenizer
from tinyslm.train.checkpoint import CONFIG_FILE, TOKENIZER_DIR, load_run, restore_weights

NOTICE = "teaching model, not medical advice"
SPEC_FILE = "classifier.yaml"
ADAPTERS_DIR = "adapters"


@dataclass(frozen=True)
class ClassifierSpec:
    """What ``classifier.yaml`` records: everything beyond the LM needed to use and to judge the classifier.

    ``labels`` are in the order of the outputs. ``strategy`` says what was trained: ``full`` (every
    weight), ``last_blocks`` (the last ``train_layers`` blocks, final norm and head; 0 = norm and
    head alone, by the training loop), ``lora`` (adapters and head) or ``probe`` (standardisation and head,
    fitted in closed form on the ``taps``). ``template`` wraps every text before it is tokenised.
    ``max_len`` is the padded length of a text (head, probe) or of prompt + answer (generative).
    """

    labels: tuple[str, ...]
    method: Literal["head", "probe", "generative"] = "head"
    pooling: Literal["last", "mean"] = "mean"
    strategy: Literal["full", "last_blocks", "lora", "probe"] = "full"
    train_layers: int | None = None
    lora: LoRAConfig | None = None
    max_len: int = 128
    taps: tuple[str, ...] | None = None  # probe only: what it reads, e.g. ("last@24", "mean@3")
    template: str = "{text}"
    base_run: str = ""
    data: str = "symptom2disease"
    extra_data: str | None = None  # a second labelled dataset added to the training examples only
    val_fraction: float = 0.15
    augment: int = 0  # word-dropout copies of each training text (tinyslm.adapt.data.word_dropout_copies)
    word_dropout: float = WORD_DROPOUT
    trainable_params: int = 0
    total_params: int = 0

    def save(self, run_dir: str | Path) -> None:
        data = dataclasses.asdict(self)
        data["labels"] = list(self.labels)
        data["taps"] = None if self.taps is None else list(self.taps)
        if self.lora is not None:
            data["lora"]["targets"] = list(self.lora.targets)
        Path(run_dir, SPEC_FILE).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    @classmethod
    def load(cls, run_dir: str | Path) -> ClassifierSpec:
        path = Path(run_dir, SPEC_FILE)
        if not path.is_file():
            run = Path(run_dir)
            hint = (f"it is a language-model run: make a classifier from it with `tinyslm finetune --run {run} "
                    f"--out {run}-cls`" if (run / "config.yaml").is_file() else
                    f"make one with `tinyslm finetune --run BASE --out {run}`")
            raise CheckpointError(f"{run_dir} is not a classifier run (no {SPEC_FILE}); {hint}")
        data = yaml.safe_load(path.read_text())
        try:
            data["labels"] = tuple(data["labels"])
            data["taps"] = None if data.get("taps") is None else tuple(data["taps"])
            data["lora"] = None if data.get("lora") is None else LoRAConfig(**data["lora"])
            return cls(**data)
        except (KeyError, TypeError) as err:
            raise CheckpointError(f"{path} is not a valid classifier spec ({err})") from None


@dataclass
class Classifier:
    """A loaded classifier: labels in, probabilities out, whatever the method.

    ``model`` is a :class:`SequenceClassifier` (method ``head``), a :class:`ProbeClassifier`
    (``probe``) or a :class:`TransformerLM` (``generative``); swap in a compressed one and every
    method below uses it.
    """

    config: RunConfig
    spec: ClassifierSpec
    model: nnx.Module
    tokenizer: Tokenizer
    path: Path | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.spec.labels)

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """texts -> (N, n_labels) float32 probabilities (each row sums to 1)."""
        if self.spec.method == "generative":
            logits = self._label_likelihoods(texts, batch_size)
        else:
            logits = self._head_logits(texts, batch_size)
        return np.asarray(jax.nn.softmax(logits, axis=-1))

    def top_k(self, text: str, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most likely labels of one text, with their probabilities, most likely first."""
        probs = self.predict_proba([text])[0]
        return [(self.spec.labels[i], float(probs[i])) for i in np.argsort(-probs)[:k]]

    def evaluate(self, examples: list[tuple[str, str]], batch_size: int = 32) -> dict:
        """Score ``(label, text)`` pairs: {"accuracy", "macro_f1", "n", "confusion", "probs", "true"}.

        ``confusion`` is indexed like :attr:`labels`; ``probs`` (N, n_labels) and ``true`` (N,) are
        kept for further analysis (calibration, the most confident mistakes).
        """
        index = {label: i for i, label in enumerate(self.spec.labels)}
        unknown = sorted({label for label, _ in examples} - set(index))
        if unknown:
            raise DataError(f"labels {unknown} are not among this classifier's {len(index)} labels; "
                            f"it knows {list(self.spec.labels)}")
        true = np.array([index[label] for label, _ in examples])
        probs = self.predict_proba([text for _, text in examples], batch_size)
        return {**classification_scores(true, probs.argmax(-1), len(index)), "probs": probs, "true": true}

    def _head_logits(self, texts: list[str], batch_size: int) -> np.ndarray:
        ids = [self.tokenizer.encode(self.spec.template.format(text=text)) for text in texts]
        tokens, lengths = pad_sequences(ids, self.spec.max_len, pad_id_of(self.tokenizer))
        graphdef, state = nnx.split(self.model)
        return map_length_buckets(partial(_classifier_logits, graphdef, state), tokens, lengths, batch_size)

    def _label_likelihoods(self, texts: list[str], batch_size: int) -> np.ndarray:
        answers = [answer_ids(self.tokenizer, label) for label in self.spec.labels]
        room = self.spec.max_len + 1 - max(map(len, answers))
        prompts = [prompt_ids(self.tokenizer, text, room) for text in texts]
        return label_log_likelihoods(self.model, prompts, answers, self.spec.max_len, pad_id_of(self.tokenizer),
                                     batch_size=batch_size)


@partial(jax.jit, static_argnums=0)
def _classifier_logits(graphdef, state, tokens, lengths):
    return nnx.merge(graphdef, state)(tokens, lengths)


def load_classifier(run_dir: str | Path, step: int | None = None) -> Classifier:
    """Load a classifier run written by :func:`tinyslm.adapt.finetune` (latest checkpoint by default)."""
    path = Path(run_dir)
    spec = ClassifierSpec.load(path)
    if spec.method == "generative":  # an ordinary language-model run
        run = load_run(path, step)
        return Classifier(run.config, spec, run.model, run.tokenizer, path)
    config = load_config(path / CONFIG_FILE)
    lm = TransformerLM(config.model, rngs=nnx.Rngs(0))
    if spec.method == "probe":
        model = ProbeClassifier(lm, len(spec.labels), spec.taps, rngs=nnx.Rngs(0))
    else:
        model = SequenceClassifier(lm, len(spec.labels), spec.pooling, rngs=nnx.Rngs(0))
    restore_weights(path, model, step)
    return Classifier(config, spec, model, load_tokenizer(path / TOKENIZER_DIR), path)
