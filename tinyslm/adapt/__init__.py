"""Adaptation: turn a trained language model into a model for one task.

    lora.py        low-rank adapters: apply, merge / unmerge, save / load on their own
    head.py        a classification head on pooled hidden states (last token or mean)
    generative.py  classification by scoring each label as the text's continuation
    probe.py       logistic regression on a frozen model's hidden states at chosen layers
    data.py        labelled examples -> a stratified validation split -> fixed-shape batches;
                   word-dropout copies of training texts (augmentation)
    finetune.py    finetune(): the training loop with a classification task and a strategy
    classify.py    a classifier run: load_classifier(), predict_proba, top_k, evaluate
    metrics.py     accuracy, macro-F1, confusion matrix and its plot
    baseline.py    TF-IDF + logistic regression, the baseline to beat

    result = finetune("runs/default", "runs/cls-lora", lora=LoRAConfig(rank=8))
    clf = load_classifier("runs/cls-lora")
    clf.top_k("I have a red, itchy rash on my elbows")   # [(label, probability), ...]

A teaching model, not medical advice.
"""

from tinyslm.adapt.baseline import TfidfClassifier, fit_tfidf
from tinyslm.adapt.classify import NOTICE, Classifier, ClassifierSpec, load_classifier
from tinyslm.adapt.data import ExampleBatches, split_examples, word_dropout_copies
from tinyslm.adapt.finetune import FinetuneResult, finetune
from tinyslm.adapt.head import SequenceClassifier, classification_loss, pool
from tinyslm.adapt.lora import (
    LoRAConfig, LoRALinear, LoRAParam, apply_lora, load_adapters, lora_config, lora_layers, merge, merged_copy,
    save_adapters, trainable_count, unmerge,
)
from tinyslm.adapt.metrics import classification_scores, confusion_matrix, plot_confusion
from tinyslm.adapt.probe import ProbeClassifier, fit_probe

__all__ = [
    "LoRAConfig", "LoRALinear", "LoRAParam", "apply_lora", "merge", "unmerge", "merged_copy", "lora_layers",
    "lora_config", "save_adapters", "load_adapters", "trainable_count",
    "SequenceClassifier", "pool", "classification_loss", "split_examples", "word_dropout_copies", "ExampleBatches",
    "finetune", "FinetuneResult", "Classifier", "ClassifierSpec", "load_classifier", "NOTICE",
    "classification_scores", "confusion_matrix", "plot_confusion", "TfidfClassifier", "fit_tfidf",
    "ProbeClassifier", "fit_probe",
]
