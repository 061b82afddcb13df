"""The autograder can fail, can pass, and says why.

* The untouched stubs in lessons/NN_*/exercises.py fail, every one with "not implemented yet".
* A file that hands back the grader's references passes (the grader agrees with itself).
* Independent textbook answers written here in plain numpy, from the exercise docstrings alone,
  pass too: the docstrings describe exactly what the library computes.
* Typical mistakes fail with a hint that names the failing input and what went wrong.
"""

from __future__ import annotations

import textwrap

import pytest

from tinyslm.errors import TinySLMError
from tinyslm.grader import LESSONS, check, compare, default_exercises_path, exercise_names, get_lesson, grade

LESSON_NUMBERS = sorted(LESSONS)

# Student-style answers, written from the docstrings in lessons/NN_*/exercises.py.
TEXTBOOK = {
    "01": """
        def count_pairs(ids):
            counts = {}
            for a, b in zip(ids, ids[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + 1
            return counts

        def merge(ids, pair, new_id):
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
                    out.append(new_id); i += 2
                else:
                    out.append(ids[i]); i += 1
            return out

        def train_bpe(text, num_merges):
            ids, merges = list(text.encode("utf-8")), []
            for i in range(num_merges):
                counts = count_pairs(ids)
                if not counts:
                    break
                pair = max(counts, key=counts.get)
                ids = merge(ids, pair, 256 + i)
                merges.append(pair)
            return merges

        def bpe_encode(text, merges):
            ids = list(text.encode("utf-8"))
            for i, pair in enumerate(merges):
                ids = merge(ids, pair, 256 + i)
            return ids
    """,
    "02": """
        def embedding_lookup(weight, ids):
            return weight[ids]

        def rope_frequencies(head_dim, theta):
            i = np.arange(head_dim // 2)
            return (theta ** (-2.0 * i / head_dim)).astype(np.float32)

        def apply_rope(x, positions, inv_freq):
            angle = positions[:, :, None, None] * inv_freq  # (B, T, 1, D/2)
            a, b = np.split(x, 2, axis=-1)
            return np.concatenate([a * np.cos(angle) - b * np.sin(angle), b * np.cos(angle) + a * np.sin(angle)], -1)
    """,
    "03": """
        def softmax(x):
            e = np.exp(x - x.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)

        def causal_mask(T):
            return np.tril(np.ones((T, T), bool))

        def causal_attention(q, k, v):
            D, T = q.shape[-1], q.shape[1]
            scores = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(D)
            scores = np.where(causal_mask(T), scores, -np.inf)
            return np.einsum("bhts,bshd->bthd", softmax(scores), v)

        def grouped_query_attention(q, k, v):
            G = q.shape[2] // k.shape[2]
            return causal_attention(q, np.repeat(k, G, axis=2), np.repeat(v, G, axis=2))
    """,
    "04": """
        def rms_norm(x, scale, eps=1e-5):
            return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * scale

        def layer_norm(x, scale, bias, eps=1e-5):
            y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * scale
            return y if bias is None else y + bias

        def swiglu_mlp(x, w_gate, w_up, w_down):
            g = x @ w_gate
            return (g / (1 + np.exp(-g)) * (x @ w_up)) @ w_down

        def llama_param_count(vocab_size, d_model, n_layers, n_heads, n_kv_heads, d_ff, tie_embeddings=True):
            kv = n_kv_heads * (d_model // n_heads)
            per_layer = 2 * d_model + 2 * d_model * d_model + 2 * d_model * kv + 3 * d_model * d_ff
            head = 0 if tie_embeddings else d_model * vocab_size
            return vocab_size * d_model + n_layers * per_layer + d_model + head
    """,
    "05": """
        import math

        def warmup_cosine_lr(step, lr, min_lr, warmup_steps, decay_steps):
            if step < warmup_steps:
                return lr * step / warmup_steps
            if step >= decay_steps:
                return min_lr
            progress = (step - warmup_steps) / (decay_steps - warmup_steps)
            return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

        def cross_entropy(logits, targets, mask=None):
            m = logits.max(-1, keepdims=True)
            lse = np.log(np.exp(logits - m).sum(-1)) + m[..., 0]
            losses = lse - np.take_along_axis(logits, targets[..., None], -1)[..., 0]
            if mask is None:
                return float(losses.mean())
            return float((losses * mask).sum() / max(mask.sum(), 1.0))
    """,
    "06": """
        def temperature_softmax(logits, temperature):
            z = logits / temperature
            e = np.exp(z - z.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)

        def top_p_filter(logits, p):
            probs = temperature_softmax(logits, 1.0)
            order = np.argsort(-probs, axis=-1)
            sorted_probs = np.take_along_axis(probs, order, -1)
            keep_sorted = np.cumsum(sorted_probs, -1) - sorted_probs < p
            keep = np.zeros_like(keep_sorted)
            np.put_along_axis(keep, order, keep_sorted, -1)
            return np.where(keep, logits, -np.inf)
    """,
    "07": """
        def absmax_scales(w):
            return (np.abs(w).max(axis=0, keepdims=True) / 127).astype(np.float32)

        def quantize_int8(w):
            scale = absmax_scales(w)
            return np.round(w / np.where(scale == 0, 1, scale)).astype(np.int8)

        def dequantize(q, scale):
            return q.astype(np.float32) * scale

        def pack_int4(q):
            half = len(q) // 2
            return (q[:half].astype(np.uint8) & 0x0F) | (q[half:].astype(np.uint8) << 4)

        def unpack_int4(packed):
            signed = packed.view(np.int8)
            return np.concatenate([(signed << 4) >> 4, signed >> 4])
    """,
    "08": """
        def magnitude_mask(weights, sparsity):
            order = np.argsort(np.abs(weights).ravel(), kind="stable")
            mask = np.ones(weights.size, bool)
            mask[order[:round(sparsity * weights.size)]] = False
            return mask.reshape(weights.shape)

        def two_four_mask(scores):
            mask = np.zeros(scores.shape, bool)
            for col in range(scores.shape[1]):
                for start in range(0, scores.shape[0], 4):
                    best = sorted(range(4), key=lambda i: (-scores[start + i, col], i))[:2]
                    mask[[start + i for i in best], col] = True
            return mask
    """,
    "09": """
        def soft_targets(logits, temperature):
            z = logits / temperature
            e = np.exp(z - z.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)

        def _log_softmax(z):
            z = z - z.max(-1, keepdims=True)
            return z - np.log(np.exp(z).sum(-1, keepdims=True))

        def kl_divergence(teacher_logits, student_logits, temperature):
            log_p, log_q = _log_softmax(teacher_logits / temperature), _log_softmax(student_logits / temperature)
            return float((np.exp(log_p) * (log_p - log_q)).sum(-1).mean())

        def kd_loss(student_logits, teacher_logits, targets, temperature, alpha):
            ce = -np.take_along_axis(_log_softmax(student_logits), targets[..., None], -1).mean()
            kl = kl_divergence(teacher_logits, student_logits, temperature)
            return float((1 - alpha) * ce + alpha * temperature ** 2 * kl)
    """,
    "10": """
        def lora_linear(x, w, a, b, alpha):
            return x @ w + (alpha / a.shape[1]) * (x @ a) @ b

        def merge_lora(w, a, b, alpha):
            return w + (alpha / a.shape[1]) * a @ b

        def last_token_pool(hidden, lengths):
            return hidden[np.arange(len(lengths)), lengths - 1]
    """,
    "12": """
        import math

        def bm25_idf(doc_freq, n_docs):
            return np.array([math.log(1 + (n_docs - n + 0.5) / (n + 0.5)) for n in doc_freq])

        def bm25_scores(query, documents, k1=1.5, b=0.75):
            avgdl = sum(len(d) for d in documents) / len(documents)
            scores = np.zeros(len(documents))
            for word in query:
                n = sum(word in d for d in documents)
                for i, d in enumerate(documents):
                    tf = d.count(word)
                    if tf:
                        scores[i] += bm25_idf([n], len(documents))[0] * tf * (k1 + 1) / (
                            tf + k1 * (1 - b + b * len(d) / avgdl))
            return scores

        def mean_pool(hidden, mask):
            m = mask[..., None].astype(hidden.dtype)
            return (hidden * m).sum(1) / m.sum(1)
    """,
}


def _write(tmp_path, body: str, name: str = "answers.py"):
    path = tmp_path / name
    path.write_text("import numpy as np\n" + textwrap.dedent(body))
    return path


@pytest.mark.parametrize("lesson", LESSON_NUMBERS)
def test_untouched_stubs_fail_as_not_implemented(lesson):
    results = grade(lesson)
    assert [r.exercise for r in results] == exercise_names(lesson)
    assert all(not r.passed and r.message == "not implemented yet" for r in results), results


@pytest.mark.parametrize("lesson", LESSON_NUMBERS)
def test_reference_answers_pass(lesson, tmp_path):
    path = _write(tmp_path, f"""
        from tinyslm.grader import LESSONS
        globals().update({{e.name: e.reference for e in LESSONS["{lesson}"].exercises}})
    """)
    results = grade(lesson, path)
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert all(r.cases_passed == r.cases_total > 0 for r in results)


@pytest.mark.parametrize("lesson", LESSON_NUMBERS)
def test_textbook_answers_written_from_the_docstrings_pass(lesson, tmp_path):
    results = grade(lesson, _write(tmp_path, TEXTBOOK[lesson]))
    assert all(r.passed for r in results), [r for r in results if not r.passed]


def test_check_returns_an_exit_code_and_prints_a_report(tmp_path, capsys):
    assert check("05", _write(tmp_path, TEXTBOOK["05"])) == 0
    assert "2/2 exercises pass" in capsys.readouterr().out
    assert check(5) == 1
    out = capsys.readouterr().out
    assert "[FAIL] warmup_cosine_lr: not implemented yet" in out and "0/2 exercises pass" in out


def _one_failure(lesson, tmp_path, body, exercise):
    """Grade the textbook answers with one function replaced by ``body``; return that function's hint."""
    path = _write(tmp_path, textwrap.dedent(TEXTBOOK[lesson]) + textwrap.dedent(body))
    results = {r.exercise: r for r in grade(lesson, path)}
    assert not results[exercise].passed
    assert not any("could not import" in r.message for r in results.values())
    return results[exercise].message


def test_a_merge_that_ignores_overlaps_fails_on_the_overlap_case(tmp_path):
    message = _one_failure("01", tmp_path, """
        def merge(ids, pair, new_id):  # replaces every position where the pair starts, overlapping or not
            out = []
            for i, x in enumerate(ids):
                if i + 1 < len(ids) and (x, ids[i + 1]) == tuple(pair):
                    out.append(new_id)
                elif not (i > 0 and (ids[i - 1], x) == tuple(pair)):
                    out.append(x)
            return out
    """, "merge")
    assert "overlapping run [7, 7, 7]" in message and "expected 7, got 99 (expected [99, 7], got [99, 99])" in message
    assert "input: [7, 7, 7], (7, 7), 99" in message


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_unstable_softmax_fails_with_a_nan_hint(tmp_path):
    message = _one_failure("03", tmp_path, """
        def softmax(x):
            e = np.exp(x)
            return e / e.sum(-1, keepdims=True)
    """, "softmax")
    assert "huge logits" in message and "NaN" in message


def test_a_missing_mask_fails_with_the_first_wrong_value(tmp_path):
    message = _one_failure("03", tmp_path, """
        def causal_attention(q, k, v):
            scores = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(q.shape[-1])
            return np.einsum("bhts,bshd->bthd", softmax(scores), v)
    """, "causal_attention")
    assert message.startswith("case 'B=1, T=4, H=1, D=8': values differ at index (0, 0, 0,")
    assert "expected" in message and "got" in message


def test_a_wrong_shape_is_reported_as_a_shape_mismatch(tmp_path):
    message = _one_failure("03", tmp_path, """
        def grouped_query_attention(q, k, v):  # forgets to merge back into (B, T, H, D)
            B, T, H, D = q.shape
            return np.zeros((B, T, H * D))
    """, "grouped_query_attention")
    assert "shape mismatch: expected shape (2, 5, 4, 8), got (2, 5, 32)" in message


def test_an_off_by_one_parameter_count_says_by_how_much(tmp_path):
    message = _one_failure("04", tmp_path, """
        def llama_param_count(vocab_size, d_model, n_layers, n_heads, n_kv_heads, d_ff, tie_embeddings=True):
            per_layer = 2 * d_model + 4 * d_model * d_model + 3 * d_model * d_ff  # ignores n_kv_heads
            return vocab_size * d_model + n_layers * per_layer + d_model + (0 if tie_embeddings else d_model * vocab_size)
    """, "llama_param_count")
    assert "case 'grouped-query attention': expected 146,240, got 158,528 (off by +12,288)" in message


def test_a_crash_names_the_case_the_exception_and_the_line(tmp_path):
    message = _one_failure("05", tmp_path, """
        def warmup_cosine_lr(step, lr, min_lr, warmup_steps, decay_steps):
            if step <= warmup_steps:
                return lr * step / warmup_steps  # divides by zero when there is no warmup
            if step >= decay_steps:
                return min_lr
            progress = (step - warmup_steps) / (decay_steps - warmup_steps)
            return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    """, "warmup_cosine_lr")
    assert message.startswith("case 'no warmup' raised ZeroDivisionError")
    assert "of answers.py)" in message and "input: 0, 0.0003, 0.0, 0, 200" in message


def test_a_missing_function_and_a_broken_file_are_reported_not_raised(tmp_path):
    path = _write(tmp_path, "def count_pairs(ids):\n    return {}\n")
    results = grade("01", path)
    assert results[1].message == "function `merge` not found in the exercises file"
    broken = tmp_path / "broken.py"
    broken.write_text("def count_pairs(ids)\n    return {}\n")
    results = grade(1, broken)
    assert all(not r.passed and "SyntaxError" in r.message for r in results)
    missing = grade(1, tmp_path / "nope.py")
    assert all("not found" in r.message for r in missing)


def test_lessons_are_found_by_number_folder_or_name():
    assert get_lesson(1) is get_lesson("01") is get_lesson("01_tokenization") is get_lesson("tokenization")
    assert default_exercises_path(3).parts[-2:] == ("03_attention", "exercises.py")
    assert default_exercises_path(3).is_file()
    with pytest.raises(TinySLMError, match="no exercises for lesson '42'"):
        get_lesson("42")


def test_compare_explains_differences():
    assert compare({(1, 2): 2}, {(1, 2): 2}) is None
    assert "missing" in compare({}, {(1, 2): 2})
    assert "unexpected key" in compare({(1, 2): 2, (2, 3): 1}, {(1, 2): 2})
    assert compare(None, 1.0).startswith("got None")
    assert "expected an integer" in compare(3.0, 3)
    assert compare([1, 2], [1, 2]) is None and "index 1" in compare([1, 3], [1, 2])
