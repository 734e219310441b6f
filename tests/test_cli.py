"""The command line: train and evaluate on real MNIST, and one-line errors."""

import io
import json
import os
import subprocess
import sys
import threading
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import fields

import pytest

from conftest import REPO
from mlp_core import Recipe, load_checkpoint
from mlp_core.cli import main
from mlp_core.service.models_folder import model_filename

TINY_TRAIN = ("train", "--epochs", 1, "--hidden", 16, "--batch-size", 60, "--no-augment")


def cli_process(*args, env=None, timeout=300, cwd=REPO, **run):
    """`python -m mlp_core *args` in a process of its own, in `cwd` (mlp_core importable
    from anywhere); a hang past `timeout` seconds fails the test (test_cli_hardening.py's
    commands, which read FIFOs and devices, run so)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mlp_core", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **run,
    )  # fmt: skip


def cli(*args, cwd=REPO, timeout=300, **_) -> subprocess.CompletedProcess:
    """`python -m mlp_core *args` run in this process: the same `main` as `__main__.py`
    calls, its exit code, stdout and stderr, in `cwd`, warnings off as for a user. A second
    interpreter would spend 2 s importing torch per command; that `python -m mlp_core` runs
    at all is test_the_module_runs_as_a_program's. The command runs in a thread: one that
    has not ended after `timeout` seconds (it opened a FIFO it should never read, say)
    fails the test instead of stalling the suite."""
    out, err, here, ended = io.StringIO(), io.StringIO(), os.getcwd(), {}

    def run() -> None:
        try:
            ended["code"] = main([str(a) for a in args])
        except SystemExit as e:  # argparse: --help (0), a bad argument (2)
            ended["code"] = e.code if isinstance(e.code, int) else int(e.code is not None)

    try:
        os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            thread.join(timeout)
    finally:
        os.chdir(here)
    assert "code" in ended, f"mlp_core {' '.join(map(str, args))} did not end in {timeout} s"
    return subprocess.CompletedProcess(["mlp_core", *args], ended["code"], out.getvalue(),
                                       err.getvalue())  # fmt: skip


def test_the_module_runs_as_a_program(tmp_path):
    """`python -m mlp_core` from another folder: its help, and a bad argument's one line."""
    r = cli_process("--help", cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and "train" in r.stdout and "predict" in r.stdout, r.stderr
    assert_one_line_error(cli_process("fly", cwd=tmp_path, timeout=60), code=2)


def assert_one_line_error(r, code=1):
    assert r.returncode == code, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout


@pytest.mark.mnist
def test_train_one_epoch_json(mnist_root, tmp_path):
    out = tmp_path / "one.pt"
    r = cli("train", "--epochs", 1, "--data-dir", mnist_root, "--out", out, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["test_accuracy"] >= 0.90 and result["epochs"] == 1
    assert result["device"].startswith("cpu") and result["out"] == str(out)
    assert result["seconds"] > 0
    assert load_checkpoint(out).test_accuracy == result["test_accuracy"]


@pytest.mark.mnist
def test_train_progress_bar_and_default_name(mnist_root, tmp_path):
    r = cli(
        "train", "--epochs", 1, "--hidden", 32, "--optimizer", "sgd", "--lr", 0.05,
        "--data-dir", mnist_root, "--out", tmp_path / "m.pt",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "epoch 1/1" in r.stderr and "samples/s" in r.stderr and "test accuracy" in r.stderr
    assert r.stdout.startswith("Test accuracy: 0.9")
    assert load_checkpoint(tmp_path / "m.pt").recipe.hidden == (32,)


@pytest.mark.mnist
def test_evaluate_shipped_model_json(mnist_root):
    r = cli("evaluate", "--model", "models/default.pt", "--data-dir", mnist_root, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["accuracy"] >= 0.98 and len(result["per_class_accuracy"]) == 10
    cm = result["confusion_matrix"]
    assert len(cm) == 10 and sum(map(sum, cm)) == 10_000
    assert sum(cm[d][d] for d in range(10)) / 10_000 == pytest.approx(result["accuracy"])
    text = cli("evaluate", "--model", "models/default.pt", "--data-dir", mnist_root)
    assert f"Test accuracy: {result['accuracy']:.4f}" in text.stdout
    assert "Confusion matrix" in text.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--epochs", "0"], "Epochs must be"),
        (["train", "--epochs", "-1"], "Epochs must be a whole number of at least 1, got -1."),
        (["train", "--hidden", "0", "5"], "Hidden sizes must be positive"),
        (["train", "--hidden", "64", "-4"], "Hidden sizes must be positive whole numbers"),
        (["train", "--batch-size", "0"], "Batch size must be a whole number of at least 1"),
        (["train", "--lr", "-1"], "Learning rate must be a positive"),
        (["train", "--device", "cuda:7"], "not available"),
        (["evaluate", "--model", "nope.pt"], "Cannot read the model file"),
        (["evaluate", "--model", "pyproject.toml"], "truncated or corrupt"),
    ],
)
def test_user_errors_are_one_line(args, message):
    r = cli(*args)
    assert_one_line_error(r)
    assert message in r.stderr


def test_missing_dataset_is_one_line(tmp_path):
    r = cli("train", "--epochs", 1, "--data-dir", tmp_path / "empty")
    assert_one_line_error(r)
    assert "MNIST is not in" in r.stderr and "MNIST_ROOT" in r.stderr


def test_a_batch_larger_than_the_training_set_is_one_line(tiny_mnist):
    r = cli("train", "--batch-size", 601, "--epochs", 1, "--data-dir", tiny_mnist)
    assert_one_line_error(r)
    assert "Batch size 601 is larger than the 600 training images." in r.stderr


def test_bad_arguments_are_one_line():
    assert_one_line_error(cli("train", "--epochs", "many"), code=2)
    assert_one_line_error(cli("train", "--hidden", "1.5"), code=2)
    assert_one_line_error(cli("fly"), code=2)


def one_spaced(text: str) -> str:
    return " ".join(text.split())


def test_help_states_each_default():
    text = one_spaced(cli("train", "--help", timeout=60).stdout)
    for f in fields(Recipe):
        shown = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else f.default
        flag = "--" + f.name.replace("_", "-")
        assert flag in text
        assert f"{one_spaced(f.metadata['help'])} (default: {shown})" in text, f.name
    assert "(default: $MNIST_ROOT, else ./data)" in text
    assert "(default: models/<recipe>_acc<accuracy>.pt)" in text


def test_train_without_out_writes_the_documented_default_name(tiny_mnist, tmp_path):
    r = cli(*TINY_TRAIN, "--data-dir", tiny_mnist, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    recipe = Recipe.from_dict(result["recipe"])
    name = model_filename(recipe, result["test_accuracy"])  # models/<recipe>_acc<accuracy>.pt
    assert name.endswith(f"_acc{result['test_accuracy']:.4f}.pt")
    assert result["out"] == f"models/{name}"
    assert [p.name for p in (tmp_path / "models").iterdir()] == [name]
    assert load_checkpoint(tmp_path / "models" / name).recipe == recipe


def test_a_diverging_run_prints_one_line_and_exits_1(tiny_mnist, tmp_path):
    r = cli(
        *TINY_TRAIN, "--optimizer", "sgd", "--lr", 1e6, "--schedule", "constant",
        "--data-dir", tiny_mnist, cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(r)
    assert "Training diverged" in r.stderr and "Lower the learning rate" in r.stderr
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").iterdir())


def test_hidden_with_no_sizes_trains_a_linear_model(tiny_mnist, tmp_path):
    r = cli(*TINY_TRAIN, "--hidden", "--data-dir", tiny_mnist, "--out", tmp_path / "l.pt")
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(tmp_path / "l.pt").recipe.hidden == ()
