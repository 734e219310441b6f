"""compose: numbers of MNIST digits composed, photographed and cut as reading cuts them."""

import numpy as np
import pytest
import torch

from mlp_core.checkpoint import load_checkpoint
from mlp_core.data import load_mnist
from mlp_core.metrics import predict_probs
from mlp_core.vision.compose import compose_number, cut_digits, photograph

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_composed_numbers_say_which_digit_owns_each_pixel():
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 6:22, 10:18] = 255  # three blocks stand in for digits
    ink, owner, picks = compose_number(images, np.random.default_rng(0))
    assert ink.shape == owner.shape and ink.dtype == np.float32
    assert ((owner >= 0) == (ink > 0)).all()
    assert 2 <= len(np.unique(owner[owner >= 0])) == len(picks) <= 4


def test_composed_numbers_are_photographed_as_users_send_them_and_the_ink_is_found():
    from mlp_core.vision.digits import find_ink

    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 6:22, 10:18] = 255
    rng = np.random.default_rng(1)
    ink, _, _ = compose_number(images, rng)
    kinds = set()
    for _ in range(12):  # papers, boards and photos; PNG and JPEG
        data = photograph(ink, rng)
        kinds.add(data[:4])
        found = find_ink(data).mask
        assert found.shape == ink.shape  # the owners' pixels still line up with the picture's
        both = (found & (ink > 0.4)).sum()
        assert both / (found | (ink > 0.4)).sum() >= 0.95  # 0.99: the blur widens it a little
    assert kinds == {b"\x89PNG", b"\xff\xd8\xff\xe0"}


@pytest.mark.mnist
def test_cut_digits_are_whole_digits_with_their_labels(mnist_root):
    train = load_mnist(True, mnist_root)
    x, y = cut_digits(train.images.numpy(), train.labels.numpy(), 40, seed=3)
    assert x.dtype == np.uint8 and x.shape[1:] == (28, 28) and len(x) == len(y)
    assert 80 <= len(x) <= 160  # 2-4 digits a number, most cut whole: 121
    assert set(y.tolist()) <= set(range(10))
    # the shipped classifier reads them as their labels: the labels belong to the pictures
    model = load_checkpoint(REPO / "models" / "default.pt").model
    said = predict_probs(model, torch.from_numpy(x).float() / 255).argmax(1).numpy()
    assert (said == y).mean() >= 0.93, (said == y).mean()
    again, _ = cut_digits(train.images.numpy(), train.labels.numpy(), 40, seed=3)
    assert np.array_equal(x, again)  # the seed makes them


def test_no_numbers_no_cut_digits():
    x, y = cut_digits(np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.int64), 0, seed=0)
    assert x.shape == (0, 28, 28) and y.shape == (0,)
