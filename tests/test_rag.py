"""Retrieval-augmented generation (tinyslm.rag) against references.

* BM25 against a naive implementation of Robertson & Zaragoza's formula, and one hand-computed score.
* Dense embeddings against mean pooling written out in NumPy over the model's unpadded hidden states.
* Chat prompts against the exact text SmolLM2-Instruct's template produces, written out by hand.
* Context budgets: passages dropped lowest rank first, the best one cut, every prompt within budget.
* Answers without retrieval equal the decoder's own answer to the bare chat prompt.
* The symptom-matching rules, on hand-made answers; the ``tinyslm rag`` command's contract.

Tiny random models and a small sentencepiece tokenizer keep this fast; the tests that need the
shared data or the real SmolLM2 file skip without them.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tinyslm.cli import main
from tinyslm.config import ModelConfig, RunConfig
from tinyslm.decode import GREEDY, generate
from tinyslm.errors import DataError, GenerationError
from tinyslm.model import TransformerLM
from tinyslm.rag import (
    BM25, NOTICE, BM25Retriever, DenseRetriever, DocumentStore, Passage, answer_questions, build_prompt,
    chat_prompt, chunk_words, embed, idf, load_documents, mean_pool, precision_report, recall_at_k, render_chat,
    retrieve, split_symptoms, symptom_matcher, symptom_questions, terms, top_k,
)
from tinyslm.rag.evaluate import SymptomMatcher, SymptomQuestion, normalize
from tinyslm.tokenizer import SentencePieceTokenizer
from tinyslm.train.checkpoint import save_run

PASSAGES = {
    "mars": "Mars is the fourth planet from the Sun. Its red colour comes from iron oxide dust on its surface.",
    "owls": "Owls hunt at night. Their large eyes and silent feathers help them catch mice in the dark.",
    "tea": "Green tea is made from leaves that are steamed or pan fired soon after picking, so they do not oxidise.",
    "bees": "Bees carry pollen between flowers. A colony has one queen, thousands of workers and a few drones.",
}
QUESTION = "Why is Mars red?"
# SmolLM2-135M-Instruct's chat template, as stored in its GGUF file (tokenizer.chat_template).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SMOLLM2_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
DATA_DIR = os.environ.get("TINYSLM_DATA_DIR")
needs_data = pytest.mark.skipif(
    not (DATA_DIR and (Path(DATA_DIR) / "diseases_symptoms" / "Diseases_Symptoms.csv").is_file()),
    reason="set TINYSLM_DATA_DIR to the shared data folder")


@pytest.fixture(scope="module")
def store() -> DocumentStore:
    return DocumentStore(tuple(Passage(f"facts:{key}", key, text) for key, text in PASSAGES.items()), "facts")


@pytest.fixture(scope="module")
def tokenizer() -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(" ".join(PASSAGES.values()) * 20 + QUESTION, vocab_size=320)


@pytest.fixture(scope="module")
def model(tokenizer) -> TransformerLM:
    config = ModelConfig(preset="llama", vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, n_heads=4,
                         n_kv_heads=2, max_seq_len=256)
    model = TransformerLM(config, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)  # move the weights off their init, so that outputs vary from token to token
    nnx.update(model, jax.tree.map(lambda x: x + 0.3 * rng.standard_normal(x.shape, np.float32),
                                   nnx.state(model, nnx.Param)))
    return model


# ------------------------------------------------------------------------------------- the store


def test_chunk_words_overlaps_windows_and_covers_every_word():
    words = [f"w{i}" for i in range(25)]
    chunks = chunk_words("  ".join(words), max_words=10, overlap=3)
    assert chunks == [" ".join(words[a:b]) for a, b in [(0, 10), (7, 17), (14, 24), (21, 25)]]
    assert chunk_words("one two", max_words=10, overlap=3) == ["one two"]
    assert chunk_words(" \n ", max_words=10, overlap=3) == []
    with pytest.raises(ValueError):
        chunk_words("a b", max_words=3, overlap=3)


def test_documents_from_text_files_folders_and_csv(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("First paragraph.\n\nSecond\nparagraph.\n")
    (tmp_path / "notes" / "b.md").write_text("# B\n" + " ".join(f"x{i}" for i in range(150)))
    (tmp_path / "notes" / "skip.bin").write_bytes(b"\x00")
    folder = load_documents(tmp_path / "notes")
    assert [p.id for p in folder.passages] == ["a.txt#0", "a.txt#1", "b.md#0", "b.md#1"]
    assert folder[1].text == "Second paragraph." and folder[1].title == "a.txt"
    assert len(folder[2].text.split()) == 120 and folder[3].text.split()[0] == "x98"  # "# B" + x0..x97, then 20 words again

    (tmp_path / "t.csv").write_text("Name,Colour,Note\nMars, red ,\nEarth,blue,home\nVenus\n")
    table = load_documents(tmp_path / "t.csv")
    assert [p.id for p in table.passages] == ["t.csv:1", "t.csv:2", "t.csv:3"]
    assert table[0] == Passage("t.csv:1", "Mars", "Name: Mars\nColour: red\n", {"Name": "Mars", "Colour": "red", "Note": ""})
    assert table[2].text == "Name: Venus\n"  # a short row: the missing columns are empty

    with pytest.raises(DataError, match="not a dataset name"):
        load_documents(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="not unique"):
        DocumentStore((Passage("x", "a", "b"), Passage("x", "c", "d")), "dup")


@needs_data
def test_diseases_symptoms_rows_become_passages_with_their_codes():
    from tinyslm.data import disease_paragraph, load_rows

    rows = load_rows("diseases_symptoms")
    store = load_documents("diseases_symptoms")
    assert len(store) == len(rows) == 400
    assert store[0].id == "diseases_symptoms:1" and store[0].title == "Panic disorder"
    assert store[0].text == disease_paragraph(rows[0]) and store[0].text.startswith("Disease: Panic disorder\nSymptoms: ")
    assert store[0].fields == {column: value.strip() for column, value in rows[0].items()}


# ------------------------------------------------------------------------------------- BM25


def naive_bm25(query: list[str], documents: list[list[str]], k1: float, b: float) -> np.ndarray:
    """Robertson & Zaragoza (2009), eq. 3.26 with Lucene's idf, one document and one query word at a time."""
    n = len(documents)
    avgdl = sum(map(len, documents)) / n
    scores = []
    for doc in documents:
        total = 0.0
        for word in query:
            df = sum(word in d for d in documents)
            tf = doc.count(word)
            if tf:
                total += math.log(1 + (n - df + 0.5) / (df + 0.5)) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(total)
    return np.array(scores)


@pytest.mark.parametrize("k1,b", [(1.5, 0.75), (1.2, 0.0), (2.0, 1.0)])
def test_bm25_matches_the_formula_computed_naively(k1, b):
    rng = np.random.default_rng(int(10 * k1 + b))
    vocab = [f"w{i}" for i in range(8)]
    documents = [list(rng.choice(vocab, size=rng.integers(0, 12))) for _ in range(15)]
    documents[3] = []  # an empty document scores 0 and still counts in the average length
    index = BM25(documents, k1=k1, b=b)
    for _ in range(5):
        query = list(rng.choice(vocab + ["unseen"], size=rng.integers(1, 6)))  # repeats count twice
        np.testing.assert_allclose(index.scores(query), naive_bm25(query, documents, k1, b), rtol=1e-12)


def test_bm25_hand_computed_score_and_idf():
    # "c" is in 1 of 2 documents: idf = ln(1 + 1.5/1.5) = ln 2; avgdl = 2.5; doc 1 has tf=2, |d|=3.
    scores = BM25([["a", "b"], ["a", "c", "c"]]).scores(["c"])
    expected = math.log(2) * 2 * 2.5 / (2 + 1.5 * (0.25 + 0.75 * 3 / 2.5))
    np.testing.assert_allclose(scores, [0.0, expected], rtol=1e-12)
    assert expected == pytest.approx(0.9303989, abs=1e-7)
    np.testing.assert_allclose(idf(np.array([1, 2, 10]), 10), np.log1p(np.array([9.5 / 1.5, 8.5 / 2.5, 0.5 / 10.5])))


def test_terms_lowercase_split_and_drop_stop_words():
    assert terms("What are the symptoms of Sjögren's syndrome?") == ["symptoms", "sjögren", "s", "syndrome"]
    assert terms("What is it", stop_words=frozenset()) == ["what", "is", "it"]


def test_bm25_retriever_ranks_the_passage_sharing_rare_words_first(store):
    hits = top_k(store, BM25Retriever(store).scores(QUESTION), 2)
    assert hits[0].passage.id == "facts:mars" and hits[0].score > 0 and hits[1].score == 0.0
    with pytest.raises(DataError):
        top_k(store, np.zeros(len(store)), 0)


@needs_data
def test_bm25_finds_the_condition_a_question_names():
    store = load_documents("diseases_symptoms")
    questions = symptom_questions(store)
    assert len(questions) == 385  # conditions named in exactly one row
    assert questions[0].question == "What are the symptoms of Panic disorder?"
    assert ("shortness", "of", "breath") in questions[0].symptoms
    recall = recall_at_k(BM25Retriever(store), questions, ks=(1, 3))
    assert recall[1] > 0.9 and recall[3] > 0.98  # measured: 0.956 and 0.995


# ------------------------------------------------------------------------------------- dense


def test_mean_pool_averages_real_tokens_only():
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 5, 4)).astype(np.float32)
    lengths = [5, 2, 1]
    mask = np.arange(5) < np.array(lengths)[:, None]
    expected = np.stack([hidden[i, :n].mean(axis=0) for i, n in enumerate(lengths)])
    np.testing.assert_allclose(mean_pool(jnp.asarray(hidden), jnp.asarray(mask)), expected, rtol=1e-6)


def test_embeddings_are_unit_mean_pooled_hidden_states_whatever_the_batch(model, tokenizer):
    texts = [QUESTION, PASSAGES["owls"], PASSAGES["tea"]]
    together = embed(model, tokenizer, texts, batch_size=3)  # padded to the longest text's bucket
    for text, row in zip(texts, together):
        hidden, _ = model.hidden_states(jnp.asarray([tokenizer.encode(text)]))  # unpadded
        reference = np.asarray(hidden[0]).mean(axis=0)
        np.testing.assert_allclose(row, reference / np.linalg.norm(reference), atol=2e-6)
    np.testing.assert_allclose(embed(model, tokenizer, texts, batch_size=1), together, atol=2e-6)
    with pytest.raises(DataError, match="empty"):
        embed(model, tokenizer, ["fine", ""])


def test_dense_retriever_scores_are_cosine_similarities(model, tokenizer, store):
    retriever = DenseRetriever(model, tokenizer, store, batch_size=2)
    scores = retriever.scores(PASSAGES["bees"])  # a passage's own text is its best match: cosine 1
    assert top_k(store, scores, 1)[0].passage.id == "facts:bees" and scores[3] == pytest.approx(1.0, abs=1e-5)
    emb = retriever.embeddings
    q = embed(model, tokenizer, [QUESTION])[0]
    np.testing.assert_allclose(retriever.scores(QUESTION), emb @ q / np.linalg.norm(emb, axis=1) / np.linalg.norm(q), atol=1e-5)


# ------------------------------------------------------------------------------------- prompts


def test_smollm2_template_renders_the_chatml_text_by_hand():
    user = [{"role": "user", "content": "Hi?"}]
    assert render_chat(SMOLLM2_TEMPLATE, user) == SMOLLM2_SYSTEM + "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    system = [{"role": "system", "content": "Be brief."}, *user]
    assert render_chat(SMOLLM2_TEMPLATE, system, add_generation_prompt=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n")
    with pytest.raises(GenerationError, match="chat template failed"):
        render_chat("{{ raise_exception('only user turns') }}", user)


def test_chat_prompt_uses_the_tokenizers_template_or_plain_text(tokenizer):
    from tinyslm.interop.hf_tokenizer import HFTokenizer

    assert chat_prompt(tokenizer, "Hi?") == "Hi?\nAnswer:"  # tinyslm's own tokenizer has no template
    chat = HFTokenizer.convert(tokenizer)
    chat.chat_template = SMOLLM2_TEMPLATE
    assert chat_prompt(chat, "Hi?") == render_chat(SMOLLM2_TEMPLATE, [{"role": "user", "content": "Hi?"}])


def test_prompt_holds_the_best_passages_that_fit_the_budget(tokenizer, store):
    hits = top_k(store, BM25Retriever(store).scores(QUESTION), 3)
    full = build_prompt(tokenizer, QUESTION, hits, max_tokens=10_000)
    assert full.hits == tuple(hits) and not full.trimmed
    assert full.text.index("[facts:mars]") < full.text.index(f"[{hits[1].passage.id}]") < full.text.index("Question: Why")
    assert full.n_tokens == len(tokenizer.encode(full.text))

    two = build_prompt(tokenizer, QUESTION, hits, max_tokens=full.n_tokens - 1)  # the lowest-ranked goes first
    assert two.hits == tuple(hits[:2]) and two.n_tokens <= full.n_tokens - 1

    alone = build_prompt(tokenizer, QUESTION, hits[:1], max_tokens=10_000).n_tokens
    cut = build_prompt(tokenizer, QUESTION, hits, max_tokens=alone - 8)  # the best passage, cut short
    assert cut.trimmed and len(cut.hits) == 1 and cut.hits[0].passage.id == "facts:mars"
    assert cut.hits[0].passage.text.endswith(" ...") and PASSAGES["mars"].startswith(cut.hits[0].passage.text[:-4])
    assert cut.n_tokens == len(tokenizer.encode(cut.text)) <= alone - 8

    bare = len(tokenizer.encode(chat_prompt(tokenizer, QUESTION)))
    assert build_prompt(tokenizer, QUESTION, hits, max_tokens=bare).hits == ()  # no room for any passage text
    with pytest.raises(GenerationError, match="question alone"):
        build_prompt(tokenizer, QUESTION, hits, max_tokens=bare - 1)


# ------------------------------------------------------------------------------------- answering


def test_retrieve_keeps_the_best_and_drops_passages_far_below_it(store):
    scores = np.array([4.0, 1.9, 2.0, -1.0])

    class Fixed:  # a retriever whose scores are given
        def __init__(self, store):
            self.store = store

        def scores(self, question):
            return scores

    hits, ms = retrieve(Fixed(store), "anything", k=3, min_score_ratio=0.5)
    assert [h.passage.id for h in hits] == ["facts:mars", "facts:tea"] and ms >= 0
    assert len(retrieve(Fixed(store), "anything", k=3, min_score_ratio=0.0)[0]) == 3
    scores = np.array([-0.2, -0.5, -0.9, -1.0])  # a negative best (cosines can be) is still kept
    assert [h.passage.id for h in retrieve(Fixed(store), "anything", k=2, min_score_ratio=0.5)[0]] == ["facts:mars"]


def test_answers_with_and_without_retrieval(model, tokenizer, store):
    questions = [QUESTION, "What do owls hunt?", "Who leads a colony of bees?"]
    retriever = BM25Retriever(store)
    grounded = answer_questions(model, tokenizer, questions, retriever, k=2, min_score_ratio=0.0, max_new_tokens=6,
                                batch_size=2)
    for question, a in zip(questions, grounded):
        assert a.question == question and len(a.hits) == 2 and a.hits == a.retrieved
        expected = build_prompt(tokenizer, question, top_k(store, retriever.scores(question), 2), 250)
        assert a.prompt_tokens == expected.n_tokens and a.retrieval_ms > 0 and a.new_tokens == 6
        reference = generate(model, tokenizer, expected.text, max_new_tokens=6, sampler=GREEDY).texts[0].strip()
        assert a.text == reference  # batching and sorting by length change nothing
    assert grounded[0].hits[0].passage.id == "facts:mars"

    memory = answer_questions(model, tokenizer, questions[:1], None, max_new_tokens=6)[0]
    assert memory.hits == () and memory.retrieval_ms == 0.0
    bare = chat_prompt(tokenizer, QUESTION)
    assert memory.text == generate(model, tokenizer, bare, max_new_tokens=6, sampler=GREEDY).texts[0].strip()
    assert memory.summary()["notice"] == NOTICE and memory.summary()["passages"] == []

    tight = answer_questions(model, tokenizer, questions[:1], retriever, k=3, min_score_ratio=0.0, max_new_tokens=6,
                             max_prompt_tokens=60)[0]
    assert tight.prompt_tokens <= 60 and len(tight.retrieved) == 3 and len(tight.hits) < 3
    with pytest.raises(GenerationError, match="no room"):
        answer_questions(model, tokenizer, questions[:1], retriever, max_new_tokens=256)


# ------------------------------------------------------------------------------------- evaluation


def test_symptom_phrases_are_split_normalised_and_matched_longest_first():
    assert split_symptoms("Pain, swelling (in the knee, or ankle), , Fever") == ["Pain", "swelling (in the knee, or ankle)", "Fever"]
    assert normalize("Headaches, Loss of Glasses!") == ("headache", "loss", "of", "glasse")  # same rule both sides
    matcher = SymptomMatcher(["Chest pain", "Pain", "Fever", "Shortness of breath", "Headaches", "rash"])
    assert matcher.mentions("Chest pain and a headache, then pain, fevers; no shortness of air.") == {
        ("chest", "pain"), ("pain",), ("fever",), ("headache",)}
    assert matcher.mentions("Chest pain.") == {("chest", "pain")}  # "pain" inside "chest pain" is used up


def test_precision_report_pools_mentions_and_averages_answers():
    matcher = SymptomMatcher(["fever", "cough", "rash", "itching", "chest pain"])
    question = SymptomQuestion("What are the symptoms of X?", "X", "t:1", frozenset({("fever",), ("cough",)}))
    answers = ["Fever and cough.", "Fever, rash and itching.", "I cannot say."]
    report = precision_report(answers, [question] * 3, matcher)
    assert report == {"questions": 3, "answers_with_symptoms": 2, "mentions": 5, "correct_mentions": 3,
                      "precision": 3 / 5, "mean_precision": (1 + 1 / 3) / 2}


@needs_data
def test_symptom_questions_sample_and_matcher_cover_the_table():
    store = load_documents("diseases_symptoms")
    sample = symptom_questions(store, n=60, seed=0)
    assert len(sample) == 60 and sample == symptom_questions(store, n=60, seed=0)
    assert len({q.passage_id for q in sample}) == 60
    row = next(p for p in store.passages if p.id == sample[0].passage_id)
    assert symptom_matcher(store).mentions(row.fields["Symptoms"]) >= sample[0].symptoms


# ------------------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, model, tokenizer) -> Path:
    path = tmp_path_factory.mktemp("rag") / "tiny"
    return save_run(path, RunConfig(model=model.config), model, tokenizer)


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_answers_with_passages_ids_timings_and_the_notice(run_dir, tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    for key, text in PASSAGES.items():
        (docs / f"{key}.txt").write_text(text)
    args = ["rag", "--run", str(run_dir), "--docs", str(docs), "--question", QUESTION, "--max-new-tokens", "5"]
    assert main(args + ["--k", "2", "--json"]) == 0  # the default cut-off drops passages scoring < 0.5 x the best
    out = _json(capsys)
    assert [p["id"] for p in out["passages"]] == ["mars.txt#0"]
    assert main(args + ["--k", "2", "--min-score-ratio", "0", "--json"]) == 0
    out = _json(capsys)
    assert [p["id"] for p in out["passages"]][0] == "mars.txt#0" and len(out["passages"]) == 2
    assert out["notice"] == NOTICE and out["retriever"] == "bm25" and out["new_tokens"] == 5
    assert {"answer", "retrieval_ms", "prompt_tokens", "prefill_ms", "tokens_per_s", "ms_per_token"} <= set(out)

    assert main(args + ["--no-retrieval", "--json"]) == 0
    out = _json(capsys)
    assert out["passages"] == [] and out["retriever"] is None

    assert main(args + ["--retriever", "dense"]) == 0
    printed = capsys.readouterr().out
    assert NOTICE in printed and "[" in printed


def test_cli_reports_mistakes_in_one_line(run_dir, capsys):
    base = ["rag", "--run", str(run_dir), "--question", QUESTION]
    assert main(base + ["--docs", "no/such/folder"]) == 2
    assert main(base) == 2  # no --docs and no --no-retrieval
    assert main(["rag", "--run", str(run_dir), "--question", " ", "--no-retrieval"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    assert "not a dataset name" in errors[0] and "--no-retrieval" in errors[1] and "empty" in errors[2]


# ------------------------------------------------------------------------------------- the real SmolLM2


@needs_data
@pytest.mark.slow
def test_smollm2_answers_from_the_retrieved_row(smollm2_gguf):
    from tinyslm.interop import load_gguf

    smol, tok = load_gguf(smollm2_gguf)
    assert tok.chat_template == SMOLLM2_TEMPLATE  # the template the prompts use comes from the file
    store = load_documents("diseases_symptoms")
    question = next(q for q in symptom_questions(store) if q.condition == "Vocal cord polyp")
    [a] = answer_questions(smol, tok, [question.question], BM25Retriever(store), k=3, max_new_tokens=32)
    assert a.hits[0].passage.id == question.passage_id
    assert chat_prompt(tok, "x").startswith(SMOLLM2_SYSTEM)
    report = precision_report([a.text], [question], symptom_matcher(store))
    assert report["precision"] == 1.0, a.text  # every symptom it names is in the row
