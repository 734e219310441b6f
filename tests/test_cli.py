"""The command line: train and evaluate on real MNIST, and one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from mlp_core import load_checkpoint


def cli(*args, env=None, timeout=300, cwd=REPO, **run):
    """`python -m mlp_core *args` in `cwd` (mlp_core importable from anywhere); a hang
    past `timeout` seconds fails the test."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mlp_core", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, **run,
    )  # fmt: skip


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
