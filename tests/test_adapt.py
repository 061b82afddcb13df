"""tinyslm.adapt: LoRA, classification heads, fine-tuning runs, `tinyslm finetune` / `tinyslm classify`.

References: a hand count of LoRA's parameters, the un-adapted model's logits, the unmerged
model's logits, a NumPy computation of pooled states and scores, scikit-learn's metrics and
logistic regression, and accuracies computed by hand. The fine-tuning tests train a tiny base model on the generated
symptom corpus once per session and fine-tune it for a few steps on the generated labelled
examples (no data files needed).
"""

from __future__ import annotations

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tinyslm.adapt import (
    ClassifierSpec, LoRAConfig, SequenceClassifier, apply_lora, classification_scores, finetune, load_adapters,
    load_classifier, lora_layers, merge, merged_copy, pool, save_adapters, split_examples, trainable_count, unmerge,
)
from tinyslm.adapt.data import (
    ExampleBatches, map_length_buckets, near_duplicate_groups, pad_sequences, word_dropout_copies,
)
from tinyslm.adapt.generative import answer_windows
from tinyslm.adapt.lora import LoRAParam
from tinyslm.adapt.probe import (
    PROBE_L2, PROMPT_TEMPLATE, ProbeClassifier, extract_features, fit_logistic_regression, parse_taps,
)
from tinyslm.cli import main
from tinyslm.config import ModelConfig, load_config
from tinyslm.data import load_labeled
from tinyslm.errors import ConfigError, DataError
from tinyslm.model import TransformerLM
from tinyslm.train import train

SMALL = ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, max_seq_len=16)


def _tokens(shape, seed=0, vocab=50):
    return jnp.asarray(np.random.default_rng(seed).integers(1, vocab, shape))


def _randomise_b(model, seed=1):
    """Give every adapter a non-zero B, as training would."""
    for i, (_, layer) in enumerate(lora_layers(model)):
        layer.lora_b[...] = 0.1 * jax.random.normal(jax.random.key(seed + i), layer.lora_b.shape)


# ------------------------------------------------------------------------------------------ LoRA


@pytest.mark.parametrize("targets", [("q", "v"), ("q", "k", "v", "o", "gate", "up", "down")])
def test_lora_trains_r_times_d_in_plus_d_out_per_adapted_matrix(targets):
    model = apply_lora(TransformerLM(SMALL, rngs=nnx.Rngs(0)), targets, rank=4)
    d, kv, ff = SMALL.d_model, SMALL.n_kv_heads * SMALL.head_dim, SMALL.d_ff
    shapes = {"q": (d, d), "k": (d, kv), "v": (d, kv), "o": (d, d), "gate": (d, ff), "up": (d, ff), "down": (ff, d)}
    expected = SMALL.n_layers * sum(4 * (shapes[t][0] + shapes[t][1]) for t in targets)
    assert trainable_count(model, LoRAParam) == expected
    assert len(lora_layers(model)) == SMALL.n_layers * len(targets)


def test_lora_with_zero_b_equals_the_base_model():
    model = TransformerLM(SMALL, rngs=nnx.Rngs(0))
    tokens = _tokens((2, 16))
    base = model(tokens)
    apply_lora(model, ("q", "k", "v", "o", "gate", "up", "down"), rank=4)
    np.testing.assert_array_equal(model(tokens), base)


def test_merged_and_unmerged_logits_agree_and_unmerge_restores_the_base_weights():
    model = apply_lora(TransformerLM(SMALL, rngs=nnx.Rngs(0)), ("q", "v", "down"), rank=4, alpha=8.0)
    base_kernel = np.array(model.blocks[0].attn.q.base.kernel[...])
    _randomise_b(model)
    tokens = _tokens((2, 16), seed=3)
    unmerged = model(tokens)
    merge(model)
    np.testing.assert_allclose(model(tokens), unmerged, atol=1e-5, rtol=1e-5)
    assert not np.allclose(model.blocks[0].attn.q.base.kernel[...], base_kernel)  # really folded in
    np.testing.assert_allclose(merged_copy(model)(tokens), unmerged, atol=1e-5, rtol=1e-5)
    unmerge(model)
    np.testing.assert_allclose(model.blocks[0].attn.q.base.kernel[...], base_kernel, atol=1e-6)
    np.testing.assert_allclose(model(tokens), unmerged, atol=1e-5, rtol=1e-5)


def test_lora_forward_is_x_w_plus_scaled_x_a_b():
    model = apply_lora(TransformerLM(SMALL, rngs=nnx.Rngs(0)), ("q",), rank=2, alpha=6.0)
    _randomise_b(model)
    layer = model.blocks[0].attn.q
    x = np.random.default_rng(0).normal(size=(5, SMALL.d_model)).astype(np.float32)
    w, a, b = (np.asarray(v[...], np.float64) for v in (layer.base.kernel, layer.lora_a, layer.lora_b))
    np.testing.assert_allclose(layer(jnp.asarray(x)), x @ w + (6.0 / 2) * x @ a @ b, atol=1e-5)


def test_merged_copy_is_a_plain_model_and_leaves_the_original_alone():
    model = apply_lora(TransformerLM(SMALL, rngs=nnx.Rngs(0)), ("q", "v"), rank=4)
    _randomise_b(model)
    plain = merged_copy(model)
    assert not lora_layers(plain) and len(lora_layers(model)) == 4
    untouched = TransformerLM(SMALL, rngs=nnx.Rngs(1))
    assert jax.tree.map(jnp.shape, nnx.state(plain)) == jax.tree.map(jnp.shape, nnx.state(untouched))


def test_adapters_save_and_load_on_their_own(tmp_path):
    model = apply_lora(TransformerLM(SMALL, rngs=nnx.Rngs(0)), ("q", "v", "up"), rank=4, alpha=4.0)
    _randomise_b(model)
    tokens = _tokens((2, 16), seed=5)
    save_adapters(model, tmp_path / "adapters")
    fresh = load_adapters(TransformerLM(SMALL, rngs=nnx.Rngs(0)), tmp_path / "adapters")  # same base, new adapters
    np.testing.assert_array_equal(fresh(tokens), model(tokens))
    size = sum(f.stat().st_size for f in (tmp_path / "adapters").iterdir())
    assert size < 0.2 * sum(x.nbytes for x in jax.tree.leaves(nnx.state(model)))


def test_lora_rejects_targets_the_model_lacks():
    gpt = TransformerLM(ModelConfig(preset="gpt", vocab_size=50, d_model=32, n_layers=1, n_heads=4, max_seq_len=16),
                        rngs=nnx.Rngs(0))
    with pytest.raises(ConfigError, match="gate"):
        apply_lora(gpt, ("q", "gate"))
    with pytest.raises(ConfigError, match="targets"):
        LoRAConfig(targets=("query",))


# ------------------------------------------------------------------------------- head and pooling


def test_pooling_matches_numpy():
    rng = np.random.default_rng(0)
    hidden, lengths = rng.normal(size=(3, 6, 4)).astype(np.float32), np.array([6, 1, 3])
    last = np.stack([hidden[i, n - 1] for i, n in enumerate(lengths)])
    mean = np.stack([hidden[i, :n].mean(0) for i, n in enumerate(lengths)])
    np.testing.assert_allclose(pool(jnp.asarray(hidden), jnp.asarray(lengths), "last"), last)
    np.testing.assert_allclose(pool(jnp.asarray(hidden), jnp.asarray(lengths), "mean"), mean, rtol=1e-6)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_the_classification_head_ignores_padding(pooling):
    clf = SequenceClassifier(TransformerLM(SMALL, rngs=nnx.Rngs(0)), 5, pooling, rngs=nnx.Rngs(1))
    text = np.asarray(_tokens((1, 7), seed=2))
    alone = clf(jnp.asarray(text), jnp.array([7]))
    short, _ = pad_sequences([text[0].tolist()], 16, pad_id=0)
    noisy = short.copy()
    noisy[0, 7:] = np.asarray(_tokens((9,), seed=4))  # whatever sits in the padded positions
    for padded in (short, noisy):
        np.testing.assert_allclose(clf(jnp.asarray(padded), jnp.array([7])), alone, atol=1e-5)


def test_answer_windows_mask_exactly_the_answer_tokens():
    windows, mask = answer_windows([[5, 6, 7], [8]], [[20, 21], [22]], max_len=5, pad_id=0)
    np.testing.assert_array_equal(windows, [[5, 6, 7, 20, 21, 0], [8, 22, 0, 0, 0, 0]])
    # position t predicts windows[t + 1]: the answer is predicted from the last prompt token on
    np.testing.assert_array_equal(mask, [[0, 0, 1, 1, 0], [1, 0, 0, 0, 0]])


# ---------------------------------------------------------------------------------------- data


def test_split_is_stratified_seeded_and_keeps_near_duplicates_together():
    twins = "my skin is red and itchy and it burns at night"
    examples = ([("a", f"{twins} {i}") for i in range(3)] + [("a", f"unrelated text number {w}") for w in "pqrstuvwxyz"]
                + [("b", f"another plain description {w} here") for w in "abcdefghij"])
    train_ex, val_ex = split_examples(examples, 0.2, seed=0)
    assert sorted(train_ex + val_ex) == sorted(examples)
    assert {label for label, _ in val_ex} == {"a", "b"}
    assert split_examples(examples, 0.2, seed=0) == (train_ex, val_ex)
    assert split_examples(examples, 0.0, seed=0) == (examples, [])  # nothing held out
    held_twins = sum(text.startswith(twins) for _, text in val_ex)
    assert held_twins in (0, 3)  # the three paraphrases are never split up
    assert near_duplicate_groups([f"{twins} 1", "nothing alike at all here", f"{twins} 2"]) == [[0, 2], [1]]


def test_length_buckets_cut_padding_and_keep_the_rows_order():
    lengths = np.array([3, 40, 17, 5, 33, 16, 2])
    tokens, _ = pad_sequences([list(range(1, n + 1)) for n in lengths], 40, 0)
    seen = []

    def first_tokens_sum(tokens, lengths):  # reads each row's real tokens only, as a causal model does
        seen.append(tokens.shape)
        return np.array([row[:n].sum() for row, n in zip(tokens, lengths)])

    out = map_length_buckets(first_tokens_sum, tokens, lengths, batch_size=2, multiple=16)
    np.testing.assert_array_equal(out, lengths * (lengths + 1) // 2)
    assert sorted(set(seen)) == [(2, 16), (2, 32), (2, 40)]  # widths 16 and 32, and the 40 columns there are
    assert len(seen) == 4  # 4 rows of width 16 in 2 batches; 1 of width 32 and 2 of 40, one batch each


def test_word_set_overlap_links_looser_paraphrases():
    texts = ["itchy red skin on my arms and legs", "on my legs and arms the skin is red and itchy", "a dry cough at night"]
    assert near_duplicate_groups(texts) == [[0], [1], [2]]  # reordered words share no 3-gram
    assert near_duplicate_groups(texts, word_threshold=0.8) == [[0, 1], [2]]  # 8 of 10 distinct words shared
    assert near_duplicate_groups(texts, word_threshold=0.9) == [[0], [1], [2]]


def test_example_batches_deal_every_example_once_per_epoch_and_pad_validation_with_zero_weight():
    arrays = {"x": np.arange(10)}
    batches = ExampleBatches(arrays, {"x": np.arange(5)}, batch_size=2, grad_accum=1, seed=3)
    epoch = np.concatenate([batches.train(step)["x"].ravel() for step in range(5)])
    assert sorted(epoch) == list(range(10))
    np.testing.assert_array_equal(batches.train(7)["x"], batches.train(7)["x"])  # a pure function of the step
    assert batches.train(0)["x"].shape == (1, 2)
    val = batches.validation()
    assert [b["weight"].tolist() for b in val] == [[1, 1], [1, 1], [1, 0]]


def test_scores_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    true, pred = rng.integers(0, 6, 50), rng.integers(0, 6, 50)
    pred[:3] = 5  # label 5 predicted often; label 4 may be absent from one side
    scores = classification_scores(true, pred, 7)  # label 6 never appears: left out of the mean
    assert scores["accuracy"] == pytest.approx(metrics.accuracy_score(true, pred))
    assert scores["macro_f1"] == pytest.approx(metrics.f1_score(true, pred, average="macro"))
    np.testing.assert_array_equal(scores["confusion"], metrics.confusion_matrix(true, pred, labels=range(7)))


# ------------------------------------------------------------------------------ fine-tuning runs

BASE = ["data.corpus_bytes=60000", "tokenizer.vocab_size=320", "model.d_model=32", "model.n_layers=2",
        "model.n_heads=2", "model.max_seq_len=64", "train.seq_len=64", "train.batch_size=8", "train.max_steps=30",
        "train.eval_interval=30", "train.eval_batches=2", "train.samples=0"]
QUICK = ["train.max_steps=12", "train.eval_interval=12", "train.batch_size=8"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("adapt") / "base"
    train(load_config(None, BASE), path, progress=False)
    return path


@pytest.fixture(scope="module")
def lora_run(base_run):
    return finetune(base_run, base_run.parent / "lora", "symptoms", lora=LoRAConfig(rank=4, targets=("q", "v")),
                    overrides=[*QUICK, "train.lr=1e-2"], progress=False)


def test_lora_finetuning_trains_adapters_and_head_only_and_saves_a_loadable_classifier(base_run, lora_run):
    spec = lora_run.classifier.spec
    d, n_labels = 32, len(spec.labels)
    assert spec.strategy == "lora" and n_labels == 24
    assert spec.trainable_params == 2 * 2 * 4 * (d + d) + (d * n_labels + n_labels)
    loaded = load_classifier(lora_run.run_dir)
    assert loaded.spec == ClassifierSpec.load(lora_run.run_dir) == spec  # labels survive the round trip
    # the run holds the merged weights; base + saved adapters + saved head give the same predictions
    texts = ["I have a red itchy rash on my arms", "my chest hurts and I keep coughing"]
    probs = loaded.predict_proba(texts)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    from tinyslm.train import load_run

    rebuilt = SequenceClassifier(load_run(base_run).model, n_labels, spec.pooling, rngs=nnx.Rngs(0))
    rebuilt.label_head = loaded.model.label_head
    load_adapters(rebuilt, lora_run.run_dir / "adapters")
    loaded.model = rebuilt
    np.testing.assert_allclose(loaded.predict_proba(texts), probs, atol=1e-5)
    # the frozen base weights were not touched by training
    base_embed = np.asarray(load_run(base_run).model.embed.weight[...])
    np.testing.assert_array_equal(np.asarray(loaded.model.lm.embed.weight[...]), base_embed)


def test_last_block_finetuning_freezes_the_earlier_blocks(base_run):
    from tinyslm.train import load_run

    result = finetune(base_run, base_run.parent / "last", "symptoms", train_layers=1, overrides=QUICK, progress=False)
    base, tuned = load_run(base_run).model, result.classifier.model.lm
    np.testing.assert_array_equal(tuned.blocks[0].attn.q.kernel[...], base.blocks[0].attn.q.kernel[...])
    assert not np.allclose(tuned.blocks[1].attn.q.kernel[...], base.blocks[1].attn.q.kernel[...])
    per_block = sum(x.size for x in jax.tree.leaves(nnx.state(base.blocks[1], nnx.Param)))
    assert result.classifier.spec.trainable_params == per_block + 32 + 32 * 24 + 24  # block, final norm, head


def test_generative_classifier_scores_each_label_by_its_likelihood(base_run):
    result = finetune(base_run, base_run.parent / "gen", "symptoms", method="generative", overrides=QUICK,
                      val_fraction=0.03, progress=False)
    clf = result.classifier
    text = "I have a fever and a cough"
    probs = clf.predict_proba([text])[0]
    # reference: the plain forward pass over prompt + answer (padded to one length), summed by hand
    from tinyslm.adapt.generative import answer_ids, prompt_ids

    room = clf.spec.max_len + 1 - max(len(answer_ids(clf.tokenizer, label)) for label in clf.labels)
    prompt = prompt_ids(clf.tokenizer, text, room)
    answers = [answer_ids(clf.tokenizer, label) for label in clf.labels]
    rows = np.zeros((len(answers), len(prompt) + max(map(len, answers))), np.int32)
    for i, answer in enumerate(answers):
        rows[i, : len(prompt) + len(answer)] = prompt + answer
    log_probs = np.asarray(jax.nn.log_softmax(clf.model(jnp.asarray(rows[:, :-1])), -1))
    scores = [sum(log_probs[i, len(prompt) - 1 + j, t] for j, t in enumerate(answer))
              for i, answer in enumerate(answers)]
    np.testing.assert_allclose(probs, jax.nn.softmax(jnp.asarray(scores)), atol=1e-4)
    assert np.argmax(probs) == np.argmax(scores)


# --------------------------------------------------------------------------------------- the CLI


def test_classify_csv_gives_the_accuracy_computed_by_hand(lora_run, tmp_path, capsys):
    clf = lora_run.classifier
    texts = ["I have a red itchy rash", "my joints ache in the morning", "I keep sneezing and my nose runs",
             "I feel burning when I pee", "my stomach burns after meals"]
    predicted = [clf.labels[i] for i in clf.predict_proba(texts).argmax(-1)]
    truth = [predicted[0], predicted[1], predicted[2]] + [next(l for l in clf.labels if l != p) for p in predicted[3:]]
    csv_path = tmp_path / "tiny.csv"
    csv_path.write_text("label,text\n" + "".join(f'{label},"{text}"\n' for label, text in zip(truth, texts)))
    assert main(["classify", "--run", str(lora_run.run_dir), "--csv", str(csv_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["accuracy"] == pytest.approx(3 / 5) and out["n"] == 5
    assert out["notice"] == "teaching model, not medical advice"
    assert (lora_run.run_dir / "confusion_tiny.png").stat().st_size > 0


def test_classify_text_prints_the_top_three_with_the_notice(lora_run, capsys):
    assert main(["classify", "--run", str(lora_run.run_dir), "--text", "my head is pounding", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    out = json.loads(lines[-1])
    probs = [p["probability"] for p in out["predictions"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    expected = lora_run.classifier.top_k("my head is pounding")
    assert [p["label"] for p in out["predictions"]] == [label for label, _ in expected]
    assert "not medical advice" in "\n".join(lines[:-1])


def test_finetune_cli_reports_json_and_errors_in_one_line(base_run, tmp_path, capsys):
    assert main(["finetune", "--run", str(base_run), "--data", "symptoms", "--train-layers", "0", "--no-progress",
                 "--set", "train.max_steps=4", "--set", "train.eval_interval=4", "--out", str(tmp_path / "probe"),
                 "--augment", "1", "--word-dropout", "0.3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["strategy"] == "last_blocks" and out["trainable_params"] == 32 * 24 + 24 + 32
    spec = ClassifierSpec.load(tmp_path / "probe")
    assert (spec.augment, spec.word_dropout) == (1, 0.3)
    assert 0.0 <= out["val_accuracy"] <= 1.0 and out["notice"] == "teaching model, not medical advice"
    assert main(["finetune", "--run", str(base_run), "--lora-rank", "4", "--train-layers", "1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["finetune", "--run", str(base_run), "--word-dropout", "0.2", "--out", str(tmp_path / "x")]) == 2
    assert "add --augment N" in capsys.readouterr().err
    assert main(["classify", "--run", str(base_run), "--text", "hello"]) == 2
    assert f"make a classifier from it with `tinyslm finetune --run {base_run} --out" in capsys.readouterr().err


def _record_example_counts(monkeypatch) -> dict:
    """Make fine-tuning record how many training and validation examples its batches are dealt from."""
    seen = {}

    class Recording(ExampleBatches):
        def __init__(self, train_arrays, val_arrays, *args):
            seen["train"], seen["val"] = len(train_arrays["labels"]), len(val_arrays["labels"])
            super().__init__(train_arrays, val_arrays, *args)

    monkeypatch.setattr(importlib.import_module("tinyslm.adapt.finetune"), "ExampleBatches", Recording)
    return seen


def test_extra_data_adds_training_examples_only_and_must_share_the_labels(base_run, tmp_path, monkeypatch):
    finetune_module = importlib.import_module("tinyslm.adapt.finetune")  # the module, not the function
    real_load = finetune_module.load_labeled
    extra = {"more": [("allergy", "I sneeze all spring long")] * 5, "alien": [("Martian flu", "my antennae droop")]}
    monkeypatch.setattr(finetune_module, "load_labeled", lambda name, split: extra.get(name) or real_load(name, split))
    seen = _record_example_counts(monkeypatch)
    train_ex, val_ex = split_examples(real_load("symptoms", "train"), 0.15, seed=load_config(None, BASE).train.seed)
    result = finetune(base_run, tmp_path / "extra", "symptoms", extra_data="more", train_layers=0,
                      overrides=QUICK, progress=False)
    assert seen == {"train": len(train_ex) + 5, "val": len(val_ex)}  # validation is the primary data's alone
    assert result.val["n"] == len(val_ex) and result.classifier.spec.extra_data == "more"
    with pytest.raises(ConfigError, match="Martian flu"):
        finetune(base_run, tmp_path / "alien", "symptoms", extra_data="alien", overrides=QUICK, progress=False)


def test_word_dropout_copies_drop_words_at_the_rate_asked_and_never_empty_a_text():
    examples = [("flu", "fever cough aches chills and a sore throat every evening"), ("acne", "spots"),
                ("cold", "a runny nose")]
    copies = word_dropout_copies(examples, 300, p=0.25, seed=3)
    assert len(copies) == 900 and [label for label, _ in copies[::300]] == ["flu", "acne", "cold"]
    for i, (_, text) in enumerate(examples):  # copy j of example i sits at i * copies + j
        words = text.split()
        for _, noisy in copies[i * 300 : (i + 1) * 300]:
            kept = noisy.split()
            assert kept and all(w in words for w in kept)  # a subsequence of the words, never empty
            assert kept == [w for w in words if w in kept]
    kept_words = sum(len(text.split()) for _, text in copies[:300])
    assert abs(1 - kept_words / (300 * 10) - 0.25) < 0.03  # ~25% of the 10 words dropped
    assert word_dropout_copies(examples, 2, p=0.0) == [ex for ex in examples for _ in range(2)]
    assert word_dropout_copies(examples, 4, seed=1) == word_dropout_copies(examples, 4, seed=1)
    assert word_dropout_copies(examples, 0) == []
    with pytest.raises(DataError, match="word-dropout rate"):
        word_dropout_copies(examples, 2, p=1.0)


def test_augmentation_adds_noisy_training_copies_only(base_run, tmp_path, monkeypatch):
    seen = _record_example_counts(monkeypatch)
    train_ex, val_ex = split_examples(load_labeled("symptoms", "train"), 0.15, seed=load_config(None, BASE).train.seed)
    result = finetune(base_run, tmp_path / "aug", "symptoms", augment=3, train_layers=0, overrides=QUICK,
                      progress=False)
    assert seen == {"train": 4 * len(train_ex), "val": len(val_ex)}  # validation texts stay as written
    assert result.val["n"] == len(val_ex)
    assert result.classifier.spec.augment == 3 and ClassifierSpec.load(tmp_path / "aug").word_dropout == 0.15


# ------------------------------------------------------------------------------------- the probe


def test_logistic_regression_matches_scikit_learn():
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    labels = (x[:, :3] @ rng.normal(size=(3, 4))).argmax(1)
    l2 = 0.05
    weights, bias, _, iterations = fit_logistic_regression(x, labels, 4, l2)
    reference = linear_model.LogisticRegression(C=1 / (l2 * len(x)), tol=1e-10, max_iter=5000).fit(x, labels)
    assert 0 < int(iterations) < 1000  # converged, not stopped by the cap
    np.testing.assert_allclose(jax.nn.softmax(x @ weights + bias), reference.predict_proba(x), atol=1e-4)


def test_probe_features_are_the_pooled_residual_stream_at_each_tap():
    lm = TransformerLM(SMALL, rngs=nnx.Rngs(0))
    probe = ProbeClassifier(lm, 5, ("last@2", "mean@0"), rngs=nnx.Rngs(1))
    tokens, lengths = _tokens((3, 9), seed=5), jnp.array([9, 4, 1])
    features = np.asarray(probe.features(tokens, lengths))
    assert features.shape == (3, 2 * 32)
    hidden, _ = lm.hidden_states(tokens)  # after the final norm: the last block's stream, normed
    np.testing.assert_allclose(lm.final_norm(features[:, None, :32])[:, 0], pool(hidden, lengths, "last"), atol=1e-5)
    embedded = np.asarray(lm.embed(tokens))
    mean = np.stack([embedded[i, :n].mean(0) for i, n in enumerate(np.asarray(lengths))])
    np.testing.assert_allclose(features[:, 32:], mean, atol=1e-6)
    # padding never counts
    np.testing.assert_allclose(probe.features(tokens.at[1, 4:].set(7), lengths), features, atol=1e-5)


@pytest.mark.parametrize("taps, message", [(("last@3",), "layers run from 0 to 2"), (("max@1",), "POOLING@LAYER"),
                                           ((), "at least one tap")])
def test_probe_taps_are_checked(taps, message):
    with pytest.raises(ConfigError, match=message):
        parse_taps(taps, n_layers=2)


@pytest.mark.parametrize("val_fraction", [0.15, 0.0])  # 0: fitted on every training text, nothing held out
def test_probe_run_fits_its_head_on_the_frozen_model_and_round_trips(base_run, tmp_path, val_fraction):
    from tinyslm.train import load_run

    result = finetune(base_run, tmp_path / "probe", "symptoms", method="probe", taps=("last@2", "mean@1"),
                      val_fraction=val_fraction, progress=False)
    spec, model = result.classifier.spec, result.classifier.model
    assert (result.val is None) == (val_fraction == 0) and spec.val_fraction == val_fraction
    assert spec.method == spec.strategy == "probe" and spec.taps == ("last@2", "mean@1")
    assert spec.template == PROMPT_TEMPLATE and spec.trainable_params == 2 * 32 * 24 + 24
    assert ClassifierSpec.load(tmp_path / "probe") == spec
    base = load_run(base_run).model
    np.testing.assert_array_equal(model.lm.blocks[1].mlp.up.kernel[...], base.blocks[1].mlp.up.kernel[...])
    # the fitted head is the optimum: the same probabilities as scikit-learn's fit on the same features
    linear_model = pytest.importorskip("sklearn.linear_model")
    train_ex, _ = split_examples(load_labeled("symptoms", "train"), val_fraction, seed=load_config(None, BASE).train.seed)
    texts = [text for _, text in train_ex]
    tokens, lengths = pad_sequences([result.classifier.tokenizer.encode(PROMPT_TEMPLATE.format(text=t)) for t in texts],
                                    spec.max_len, 0)
    features = np.asarray(model.features(jnp.asarray(tokens), jnp.asarray(lengths)))
    np.testing.assert_allclose(extract_features(model, tokens, lengths), features, atol=1e-5)  # padding cut: same
    standard = (features - features.mean(0)) / (features.std(0) + 1e-6)
    reference = linear_model.LogisticRegression(C=1 / (PROBE_L2 * len(texts)), tol=1e-10, max_iter=5000).fit(
        standard, [spec.labels.index(label) for label, _ in train_ex])
    np.testing.assert_allclose(result.classifier.predict_proba(texts), reference.predict_proba(standard), atol=2e-3)


def test_probe_options_are_refused_where_they_do_not_apply(base_run, tmp_path):
    with pytest.raises(ConfigError, match="probe only"):
        finetune(base_run, tmp_path / "a", "symptoms", taps=("last@1",), progress=False)
    with pytest.raises(ConfigError, match="drop --lora-rank"):
        finetune(base_run, tmp_path / "b", "symptoms", method="probe", lora=LoRAConfig(rank=2), progress=False)
    with pytest.raises(ConfigError, match="must contain"):
        finetune(base_run, tmp_path / "c", "symptoms", method="probe", template="no slot", progress=False)
    with pytest.raises(ConfigError, match="only --method probe"):
        finetune(base_run, tmp_path / "d", "symptoms", val_fraction=0.0, progress=False)
