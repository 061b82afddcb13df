"""Tests for the embedded default corpus (tinyslm.data.symptoms)."""

import random
import re
from collections import Counter

import pytest

from tinyslm.data import symptoms
from tinyslm.data.symptoms import CONDITIONS, SYMPTOMS, generate_corpus, generate_examples

LABELS = {
    "Acne", "Arthritis", "Bronchial Asthma", "Cervical spondylosis", "Chicken pox", "Common Cold", "Dengue",
    "Dimorphic Hemorrhoids", "Fungal infection", "Hypertension", "Impetigo", "Jaundice", "Malaria", "Migraine",
    "Pneumonia", "Psoriasis", "Typhoid", "Varicose Veins", "allergy", "diabetes", "drug reaction",
    "gastroesophageal reflux disease", "peptic ulcer disease", "urinary tract infection",
}

# Every template that is told about the patient, and so must use person tokens.
PERSON_TEMPLATES = [t for s in SYMPTOMS.values() for t in s.phrasings + s.negations] + [
    t for c in CONDITIONS.values() for t in c.clues] + list(symptoms._DETAILS_ADULT + symptoms._DETAILS_CHILD)


@pytest.fixture(scope="module")
def examples():
    return generate_examples(seed=0, n=1000)


def test_same_seed_same_text_and_different_seed_different_text():
    assert generate_corpus(seed=3, n_bytes=20_000) == generate_corpus(seed=3, n_bytes=20_000)
    assert generate_corpus(seed=3, n_bytes=20_000) != generate_corpus(seed=4, n_bytes=20_000)
    assert generate_examples(seed=5, n=50) == generate_examples(seed=5, n=50)


def test_generation_leaves_global_random_state_alone():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    generate_examples(seed=0, n=20)
    assert random.random() == expected


@pytest.mark.parametrize("n_bytes", [1, 5_000, 100_000])
def test_corpus_size_is_close_to_the_request_and_ends_with_a_newline(n_bytes):
    text = generate_corpus(seed=0, n_bytes=n_bytes)
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert n_bytes <= len(text.encode()) <= max(1.03 * n_bytes, n_bytes + 600)  # stops at the first line past it
    assert len(text) - len(text.rstrip("\n").rsplit("\n", 1)[-1]) - 1 < n_bytes  # ...and not one line later


def test_corpus_rejects_a_non_positive_size():
    with pytest.raises(ValueError, match="n_bytes"):
        generate_corpus(n_bytes=0)


def test_all_24_labels_are_present_and_balanced(examples):
    assert set(CONDITIONS) == LABELS
    counts = Counter(label for label, _ in examples)
    assert set(counts) == LABELS
    assert max(counts.values()) - min(counts.values()) <= 1


def test_every_condition_has_enough_symptoms_and_phrasings():
    for condition in CONDITIONS.values():
        assert 5 <= len(condition.symptoms) <= 10, condition.label
        assert len({s.id for s in condition.symptoms}) == len(condition.symptoms), condition.label
        assert condition.course in symptoms._TIMESCALES
        for symptom in condition.symptoms:
            assert len(symptom.phrasings) >= 3, symptom.id


def test_denied_symptoms_are_never_the_conditions_own():
    for condition in CONDITIONS.values():
        own = {s.id for s in condition.symptoms}
        assert condition.deny and not own & {s.id for s in condition.deny}, condition.label
    rng = random.Random(0)
    negated = 0
    for _ in range(50):
        for condition in CONDITIONS.values():
            d = symptoms._describe(rng, condition)
            assert 2 <= len(d.symptoms) <= 5
            assert set(d.symptoms) <= {s.id for s in condition.symptoms}
            if d.negated is not None:
                negated += 1
                assert d.negated in {s.id for s in condition.deny}
                assert d.negated not in {s.id for s in condition.symptoms}
    assert negated > 100  # the negation branch really runs


def test_descriptions_are_varied(examples):
    texts = [text for _, text in examples]
    assert len(set(texts)) >= 0.95 * len(texts)


def test_descriptions_are_clean_ascii_sentences(examples):
    for _, text in examples:
        assert text.isascii() and "\n" not in text
        assert "{" not in text and "<" not in text and "  " not in text
        assert text[0].isupper() and text[-1] in ".?"
        sentences = re.split(r"(?<=[.?]) ", text)
        assert 1 <= len(sentences) <= 4, text
        assert all(s[0].isupper() for s in sentences), text


def test_templates_refer_to_the_patient_only_through_tokens():
    # So "{my} throat is sore" can become "my son's throat is sore" when a parent writes.
    for template in PERSON_TEMPLATES:
        plain = re.sub(r"\{[^{}]*\}", "", template)
        assert not re.search(r"\b(I|me|my|myself)\b", plain), template
        assert template == template.strip() and not template.endswith("."), template


def test_verbs_after_the_patient_agree_with_he_and_she():
    # After {I}, a present-tense verb must be written {first|third} ("{I} {keep|keeps}");
    # only modals, past tenses and a few adverbs may follow it as plain words.
    allowed = {"can", "can't", "could", "first", "just", "often", "suddenly", "recently",
               "began", "drank", "got", "started", "took"}
    for template in PERSON_TEMPLATES:
        for word in re.findall(r"\{I\} ([^{\s]+)", template):
            assert word in allowed, template


def test_someone_else_is_named_before_he_or_she():
    for _, text in generate_examples(seed=1, n=500):
        first_pronoun = re.search(r"\b(he|she|his|him|her)\b", text, flags=re.IGNORECASE)
        if first_pronoun:
            assert re.search(r"\bmy (son|daughter|little boy|little girl|husband|wife|mother|father|partner|"
                             r"brother|sister)\b", text[:first_pronoun.start()], flags=re.IGNORECASE), text
