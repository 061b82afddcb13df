"""The command line: help everywhere, one JSON line with --json, clear one-line errors."""

import json
import subprocess
import sys

import pytest

from tinyslm.cli import build_parser, main

TINY = ["--set", "data.corpus_bytes=40000", "--set", "tokenizer.type=char", "--set", "model.d_model=32",
        "--set", "model.n_layers=1", "--set", "model.n_heads=2", "--set", "model.max_seq_len=32",
        "--set", "train.seq_len=32", "--set", "train.batch_size=4", "--set", "train.max_steps=6",
        "--set", "train.eval_interval=3", "--set", "train.eval_batches=2", "--set", "train.log_interval=3",
        "--set", "train.samples=1", "--set", "train.sample_tokens=8"]


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(out), "--no-progress", "--json"]) == 0
    return out


def test_bare_command_prints_help():
    result = subprocess.run([sys.executable, "-m", "tinyslm"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "train" in result.stdout and "usage" in result.stdout


def test_every_command_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_train_json_and_eval_json(trained_run, capsys):
    assert main(["eval", "--run", str(trained_run), "--json"]) == 0
    figures = last_json(capsys.readouterr().out)
    assert set(figures) == {"val_loss", "perplexity", "tokens"} and figures["tokens"] > 0
    assert figures["perplexity"] == pytest.approx(2.718281828 ** figures["val_loss"], rel=1e-6)


def test_train_reports_stable_keys(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--set", "train.max_steps=2", "--out", str(out), "--no-progress", "--json"]) == 0
    figures = last_json(capsys.readouterr().out)
    assert {"final_step", "train_loss", "val_loss", "wall_s", "tokens_per_s"} <= set(figures)
    assert figures["final_step"] == 2


def test_bad_override_is_one_clear_line(capsys):
    assert main(["train", "--set", "model.nlayers=2"]) == 2
    err = capsys.readouterr().err
    assert "model.nlayers" in err and "Traceback" not in err


def test_missing_run_directory_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", "--run", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_data_list_names_the_datasets(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("symptoms", "tinyshakespeare", "tinystories", "symptom2disease", "diseases_symptoms"):
        assert name in out


def test_tokenizer_train_writes_a_loadable_tokenizer(tmp_path, capsys):
    from tinyslm.tokenizer import load_tokenizer

    assert main(["tokenizer", "train", "--data", "symptoms", "--vocab-size", "512", "--out", str(tmp_path / "tok"),
                 "--json"]) == 0
    assert last_json(capsys.readouterr().out)["vocab_size"] == 512
    assert load_tokenizer(tmp_path / "tok").vocab_size == 512


def test_generate_prints_text_and_figures(trained_run, capsys):
    assert main(["generate", "--run", str(trained_run), "--prompt", "The", "--max-new-tokens", "5",
                 "--temperature", "0", "--json"]) == 0
    captured = capsys.readouterr()
    figures = last_json(captured.out)
    assert {"text", "new_tokens", "prefill_ms", "tokens_per_s", "ms_per_token"} <= set(figures)
    assert figures["new_tokens"] == 5 and captured.out.startswith("The" + figures["text"])
    assert "tokens · prefill" in captured.err


def test_generate_stream_equals_generate(trained_run, capsys):
    common = ["generate", "--run", str(trained_run), "--prompt", "I ", "--max-new-tokens", "12", "--seed", "3"]
    assert main(common) == 0
    plain = capsys.readouterr().out
    assert main([*common, "--stream"]) == 0
    assert capsys.readouterr().out == plain


@pytest.mark.peer
def test_gguf_export_then_import_generates_the_same_text(trained_run, tmp_path, capsys):
    pytest.importorskip("gguf")
    greedy = ["--prompt", "The", "--max-new-tokens", "8", "--temperature", "0", "--json"]
    assert main(["export-gguf", "--run", str(trained_run), "--out", str(tmp_path / "m.gguf")]) == 0
    assert main(["import-gguf", str(tmp_path / "m.gguf"), "--out", str(tmp_path / "back")]) == 0
    capsys.readouterr()
    assert main(["generate", "--run", str(trained_run), *greedy]) == 0
    original = last_json(capsys.readouterr().out)["text"]
    assert main(["generate", "--run", str(tmp_path / "back"), *greedy]) == 0
    assert last_json(capsys.readouterr().out)["text"] == original


def test_check_fails_on_untouched_stubs_and_names_the_exercises(capsys):
    assert main(["check", "03"]) == 1
    assert "not implemented" in capsys.readouterr().out.lower()
    assert main(["check", "00"]) == 2  # lesson 00 has no exercises: a clear error
