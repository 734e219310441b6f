"""pairs: the shipped pair reader (two overlapping digits read at once), its file's safety, how
it was made, and what it changes in reading a number."""

import numpy as np
import pytest
import torch
from test_verifier import saved

from conftest import need
from mlp_core.checkpoint import ModelFileError
from mlp_core.vision.digits import PAIR_FRAME, recentre, to_pair
from mlp_core.vision.pairs import (
    SHIPPED,
    PairReader,
    PairRecipe,
    examples,
    load_pair_reader,
    save_pair_reader,
    score,
)
from mlp_core.vision.segment import N_FEATURES
from mlp_core.vision.verifier import Verifier, VerifierRecipe, save_verifier


@pytest.fixture(scope="module")
def shipped():
    need(SHIPPED.exists(), f"{SHIPPED} is missing: run python -m mlp_core train-pairs")
    return load_pair_reader(SHIPPED)


def test_the_shipped_pair_reader_says_how_it_was_made(shipped):
    assert SHIPPED.stat().st_size < 3_000_000  # float16 weights
    payload = torch.load(SHIPPED, weights_only=True)
    assert payload["recipe"] == {**vars(PairRecipe()), "hidden": list(PairRecipe().hidden)}
    assert payload["record"]["both_right"] >= 0.85


def test_the_shipped_pair_reader_reads_pairs_of_test_digits(shipped, mnist_root):
    from mlp_core.data import load_mnist

    test = load_mnist(False, mnist_root)  # never seen in its training
    x, f, y, names = examples(test.images.numpy(), test.labels.numpy(), 80, 11, close=1.0)
    got = score(shipped, x, f, y, names)
    assert got["test_pairs"] >= 40, got
    assert got["both_right"] >= 0.8 and got["others_refused"] >= 0.99, got


def test_the_examples_are_the_same_cut_by_one_process_or_two(tiny_mnist):
    from mlp_core.data import load_mnist

    digits = load_mnist(True, tiny_mnist)
    images, labels = digits.images.numpy(), digits.labels.numpy()
    one = examples(images, labels, 24, 3, close=0.7, workers=1, block=8)  # blocks of 8, 8, 8
    two = examples(images, labels, 24, 3, close=0.7, workers=2, block=8)
    assert len(one[2]) > 24  # candidates
    for a, b in zip(one, two, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    first = examples(images, labels, 8, 3, close=0.7, block=8)  # block 0 alone
    assert torch.equal(first[0], one[0][: len(first[0])])


def test_a_pair_picture_is_two_digits_tall_and_centred():
    x = np.zeros((40, 90), np.float32)
    x[5:35, 10:80] = 1.0  # ink 30 px tall, 70 wide
    mask = x > 0
    pair = to_pair(x, mask)
    assert pair.shape == (1, *PAIR_FRAME)
    rows, cols = torch.nonzero(pair[0] > 0.5, as_tuple=True)
    assert rows.max() - rows.min() + 1 == 20  # scaled to 20 px tall, as MNIST's digits
    assert abs((cols.min() + cols.max()) / 2 - PAIR_FRAME[1] / 2) <= 1.5  # centred


def test_a_half_of_a_pair_picture_is_centred_as_mnist_centres_a_digit():
    x = np.zeros((28, 28), np.float32)
    x[2:22, 0:6] = 1.0  # a stroke 20 x 6 px at the half's left edge
    out = recentre(x)
    assert out.shape == (28, 28) and out.sum() == pytest.approx(x.sum())  # moved, none lost
    rows, cols = np.nonzero(out)
    assert abs(rows.mean() - 14) <= 0.5 and abs(cols.mean() - 14) <= 0.5
    assert not recentre(np.zeros((28, 28), np.float32)).any()


def test_the_classifier_reads_each_half_beside_the_pair_reader(mnist_root):
    from test_numbers import MODEL

    from mlp_core.checkpoint import load_checkpoint
    from mlp_core.data import load_mnist
    from mlp_core.vision.numbers import _with_classifier

    need(MODEL.exists(), f"{MODEL} is missing")
    test = load_mnist(False, mnist_root)
    halves = torch.zeros(50, 28, 28)  # MNIST test digits pushed to a half's left edge
    halves[:, 4:24, 0:20] = test.images[:50, 4:24, 4:24].float() / 255
    unsure = torch.full((50, 10), float(np.log(0.1)))  # a pair reader that cannot tell
    got = _with_classifier(load_checkpoint(MODEL).model, unsure, halves)
    torch.testing.assert_close(got.exp().sum(1), torch.ones(50))
    assert (got.argmax(1) == test.labels[:50]).float().mean() >= 0.9
    sure = torch.log_softmax(torch.eye(10)[test.labels[:50]] * 20, 1)  # certain and right
    assert (_with_classifier(load_checkpoint(MODEL).model, sure, halves).argmax(1)
            == test.labels[:50]).all()  # fmt: skip


def test_a_saved_pair_reader_loads_back_the_same(tmp_path):
    torch.manual_seed(0)
    model = PairReader((8,))
    path = save_pair_reader(tmp_path / "p.pt", model, PairRecipe(hidden=(8,)), {"seconds": 1})
    again = load_pair_reader(path)
    rounded = PairReader((8,))  # the weights are stored in float16
    rounded.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    x, f = torch.rand(4, *PAIR_FRAME), torch.rand(4, N_FEATURES)
    for a, b in zip(again.read(x, f), rounded.read(x, f), strict=True):
        torch.testing.assert_close(a, b)
    assert torch.load(path, weights_only=True)["state_dict"]["main.layers.0.weight"].dtype == (
        torch.float16
    )
    left, right, two = model.read(x, f)
    torch.testing.assert_close(left.exp().sum(1), torch.ones(4))
    assert left.shape == right.shape == (4, 10) and two.shape == (4,) and (two <= 0).all()


def test_a_bad_pair_reader_file_is_refused_with_a_sentence(tmp_path):
    model = PairReader((8,))
    good = torch.load(save_pair_reader(tmp_path / "p.pt", model, PairRecipe(hidden=(8,)), {}),
                      weights_only=True)  # fmt: skip
    verifier = save_verifier(tmp_path / "v.pt", Verifier((8,)), VerifierRecipe(hidden=(8,)), {})
    cases = {
        "not an mlp_core pair reader": verifier.read_bytes(),
        "pair reader file's recipe is not valid": saved({**good, "recipe": {"hidden": [8]}}),
        "do not match a pair reader": saved({**good, "state_dict": {"w": torch.zeros(1)}}),
        "could run code": saved(model),
    }
    for words, data in cases.items():
        with pytest.raises(ModelFileError, match=words):
            load_pair_reader(data)


def test_train_pairs_on_the_command_line_writes_a_file_that_loads(tiny_mnist, tmp_path):
    from test_cli import cli

    out = tmp_path / "p.pt"
    r = cli("train-pairs", "--data-dir", str(tiny_mnist), "--numbers", "30", "--epochs", "1",
            "--hidden", "8", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1].startswith("Pair reader: ") and f"saved {out}" in r.stdout
    assert load_pair_reader(out).main[0].out_features == 8
    for flag, value in (("--close", "2"), ("--workers", "0")):
        bad = cli("train-pairs", "--data-dir", str(tiny_mnist), flag, value, "--out", str(out))
        assert bad.returncode == 1 and bad.stderr.startswith("error: "), bad.stderr
        assert bad.stderr.count("\n") == 1 and flag in bad.stderr  # one line, no traceback
