"""The command line under abuse (issue 12, item 6): every failure is one line and a
nonzero exit, nothing hangs, and no file that is not a model is ever replaced.

Each command runs in a real subprocess with a timeout, so a hang fails the test.
"""

import os

import pytest
from test_cli import assert_one_line_error, cli
from test_cli_predict import MODEL, drawn_digit
from test_data import BAD_IDX, spoil

from mlp_core.cli import main
from mlp_core.data import MNIST_FILES

FAST = 60  # seconds: a refused command takes a few (importing torch); a hang takes forever
NOT_REGULAR = "is not a regular file, so it was not opened."


@pytest.fixture
def unread_mnist(tmp_path):
    """A data folder whose four files are empty: training that started would fail on them,
    so a test passing with it proves the check came before MNIST was read."""
    raw = tmp_path / "unread" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).touch()
    return raw.parents[1]


@pytest.fixture
def pictures(tmp_path):
    """Two good pictures (a 7 and a 1) and a FIFO between them that nobody writes to."""
    drawn_digit(7).save(tmp_path / "seven.png")
    drawn_digit(1).save(tmp_path / "one.png")
    os.mkfifo(tmp_path / "fifo.png")
    return [tmp_path / n for n in ("seven.png", "fifo.png", "one.png")]


def test_a_fifo_among_pictures_is_refused_and_the_others_answered(pictures):
    r = cli("predict", "--model", MODEL, *pictures, timeout=FAST)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    seven, fifo, one = r.stdout.splitlines()
    assert seven.startswith(f"{pictures[0]}: 7 (") and one.startswith(f"{pictures[2]}: 1 (")
    assert fifo == f"{pictures[1]}: error: The picture fifo.png {NOT_REGULAR}"


@pytest.mark.parametrize("name", ["/dev/zero", "a folder"])
def test_predict_refuses_a_device_or_a_folder_without_reading_it(tmp_path, name):
    path = tmp_path if name == "a folder" else name
    r = cli("predict", "--model", MODEL, path, timeout=FAST)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == f"{path}: error: The picture {os.path.basename(path)} {NOT_REGULAR}\n"


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("model", ["/dev/zero", "fifo"])
def test_a_model_that_is_not_a_regular_file_is_one_line(tmp_path, pictures, command, model):
    if model == "fifo":
        model = tmp_path / "model.pt"
        os.mkfifo(model)
    args = ["--data-dir", tmp_path] if command == "evaluate" else [pictures[0]]
    r = cli(command, "--model", model, *args, timeout=FAST)
    assert_one_line_error(r)
    assert f"The model file {os.path.basename(model)} is not a regular file" in r.stderr


@pytest.mark.parametrize("case", ["label of 200", "counts differ", "truncated"])
def test_a_bad_idx_file_is_one_line_naming_it(tmp_path, case):
    name, edit, sentence = BAD_IDX[case]
    r = cli("evaluate", "--model", MODEL, "--data-dir", spoil(tmp_path, name, edit), timeout=FAST)
    assert_one_line_error(r)
    assert sentence in r.stderr


@pytest.mark.parametrize("seed", [2**64, 2**63, -1, "1e3"])
def test_a_seed_torch_cannot_take_is_refused_before_training(unread_mnist, seed):
    r = cli("train", "--seed", seed, "--data-dir", unread_mnist, timeout=FAST)
    assert_one_line_error(r, code=2)
    assert "--seed" in r.stderr


# the last resort: whatever escapes the commands is still one line naming the error


@pytest.mark.parametrize(
    "error, line",
    [
        (MemoryError(), "error: MemoryError"),
        (
            OSError(28, "No space left on device"),
            "error: OSError: [Errno 28] No space left on device",
        ),
        (RuntimeError("first line\nsecond line"), "error: RuntimeError: first line second line"),
    ],
)
def test_an_unexpected_error_is_one_line_naming_it(monkeypatch, capsys, error, line):
    def fail(args):
        raise error

    monkeypatch.setattr("mlp_core.cli.cmd_evaluate", fail)
    assert main(["evaluate", "--model", str(MODEL)]) == 1
    assert capsys.readouterr().err == line + "\n"


def test_an_interrupt_is_still_exit_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("mlp_core.cli.cmd_evaluate", interrupted)
    assert main(["evaluate", "--model", str(MODEL)]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
