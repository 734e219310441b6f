"""The command line under abuse (issue 12, item 6): every failure is one line and a
nonzero exit, nothing hangs, and no file that is not a model is ever replaced.

Each command runs with a timeout (test_cli.cli: in a thread of this process), so a hang, such
as reading a FIFO that stands in for a file never to be read, fails the test.
"""

import os
import resource
import shutil
import signal

import pytest
from test_cli import assert_one_line_error, cli, cli_process
from test_cli_predict import MODEL, drawn_digit
from test_data import BAD_IDX, spoil

from mlp_core import load_checkpoint
from mlp_core.cli import main
from mlp_core.data import MNIST_FILES

FAST = 60  # seconds: a refused command takes well under one; a hang takes forever
NOT_REGULAR = "is not a regular file, so it was not opened."
TINY_RUN = ("train", "--epochs", 1, "--hidden", 16, "--no-augment", "--json")


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


# --out: checked before MNIST is read, so a refusal never costs a training run


def refused_out(out, data_dir, message):
    r = cli(*TINY_RUN, "--data-dir", data_dir, "--out", out, timeout=FAST)
    assert_one_line_error(r)
    assert message in r.stderr
    return r


def test_out_onto_a_folder_is_refused(tmp_path, unread_mnist):
    refused_out(tmp_path, unread_mnist, f"--out {tmp_path} is a folder; name a file in it")


def test_out_onto_a_file_that_is_not_a_model_leaves_it_untouched(tmp_path, unread_mnist):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    refused_out(notes, unread_mnist, f"{notes} exists and is not an mlp_core model file")
    assert notes.read_text() == "my notes\n"


@pytest.mark.parametrize(
    "name, why",
    [
        ("x" * 300 + ".pt", "File name too long"),
        (
            "x" * 250 + ".pt",
            "File name too long",
        ),  # fits, but the temporary name saved first does not
        ("notes.txt/model.pt", "notes.txt is a file, not a folder"),
        ("a/" + "d" * 300 + "/model.pt", "File name too long"),
    ],
)
def test_out_where_no_file_can_be_written_is_refused(tmp_path, unread_mnist, name, why):
    (tmp_path / "notes.txt").write_text("my notes\n")
    refused_out(tmp_path / name, unread_mnist, why)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "unread"]  # nothing made


def test_the_check_leaves_no_folders_behind_when_the_run_fails(tmp_path, unread_mnist):
    r = cli(*TINY_RUN, "--data-dir", unread_mnist, "--out", tmp_path / "new/sub/m.pt")
    assert_one_line_error(r)
    assert "train-images-idx3-ubyte is too short" in r.stderr  # --out passed; MNIST did not
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux's /sys")
def test_out_in_a_folder_nobody_may_write_is_refused(unread_mnist):
    # /sys refuses new files even to root, where a chmod'ed folder would not
    refused_out("/sys/kernel/model.pt", unread_mnist, "Permission denied")


def test_default_out_into_an_unwritable_models_folder_is_refused(tmp_path, unread_mnist):
    (tmp_path / "models").write_text("not a folder\n")
    r = cli(*TINY_RUN, "--data-dir", unread_mnist, cwd=tmp_path, timeout=FAST)
    assert_one_line_error(r)
    assert "models is a file, not a folder" in r.stderr


def test_default_out_is_named_by_recipe_and_accuracy(tmp_path, tiny_mnist):
    r = cli(*TINY_RUN, "--data-dir", tiny_mnist, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (saved,) = (tmp_path / "models").iterdir()
    assert saved.name.startswith("16_adam_lr0.002_bs128_1ep_acc") and saved.suffix == ".pt"
    assert load_checkpoint(saved).recipe.hidden == (16,)


def test_out_onto_a_model_file_replaces_it(tmp_path, tiny_mnist):
    out = tmp_path / "old.pt"
    shutil.copy(MODEL, out)
    r = cli(*TINY_RUN, "--data-dir", tiny_mnist, "--out", out)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(out).recipe.hidden == (16,)


def small_files_only():  # in the child: writes past 100 kB fail with EFBIG, like a full disk
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


def test_a_save_that_fails_after_training_is_one_line(tmp_path, tiny_mnist):
    out = tmp_path / "big.pt"  # 784 x 64 weights: about 200 kB, more than the child may write
    r = cli_process(
        *TINY_RUN,
        "--hidden",
        64,
        "--data-dir",
        tiny_mnist,
        "--out",
        out,
        preexec_fn=small_files_only,
    )  # fmt: skip (a file size limit: its own process)
    assert_one_line_error(r)
    assert (
        f"Training finished but the model could not be saved to {out}: File too large." in r.stderr
    )
    assert list(tmp_path.iterdir()) == []  # no half-written file, no temporary left


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


def test_a_recipe_that_cannot_fit_in_memory_is_refused_before_training(tmp_path):
    # 8 layers of 8192 units at batch 60,000: about 48 GB of activations alone
    r = cli("train", "--hidden", *[8192] * 8, "--batch-size", 60_000, "--data-dir", tmp_path,
            "--out", tmp_path / "m.pt", timeout=60)  # fmt: skip
    assert_one_line_error(r)
    assert "of memory on cpu, more than the" in r.stderr and "MNIST" not in r.stderr
