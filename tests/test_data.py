"""MNIST loading on tiny IDX files the test writes, and the fast batches."""

import pytest
import torch

from conftest import make_tiny_mnist
from mlp_core import Batches, DataError, load_mnist
from mlp_core.data import MNIST_FILES, data_root


def test_loads_idx_files_as_whole_uint8_tensors(tiny_mnist):
    train, test = load_mnist(True, tiny_mnist), load_mnist(False, tiny_mnist)
    assert train.images.shape == (600, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (200,) and test.labels.dtype == torch.int64
    assert set(train.labels.tolist()) == set(range(10))


def test_root_from_argument_then_env_then_data(monkeypatch, tmp_path):
    monkeypatch.delenv("MNIST_ROOT", raising=False)
    assert str(data_root()) == "data"
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path))
    assert data_root() == tmp_path
    assert str(data_root("elsewhere")) == "elsewhere"


def test_batches_are_normalised_and_complete(tiny_mnist):
    train = load_mnist(True, tiny_mnist)
    batches = Batches(train, 64, generator=torch.Generator().manual_seed(0))
    xs, ys = zip(*batches)
    assert len(xs) == len(batches) == 10 and xs[-1].shape == (600 - 9 * 64, 28, 28)
    x = torch.cat(xs)
    assert x.dtype == torch.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert torch.equal(
        x.mul(255).round().to(torch.uint8).sort(0).values, train.images.sort(0).values
    )
    assert sorted(torch.cat(ys).tolist()) == sorted(train.labels.tolist())


def test_reshuffled_each_epoch_and_repeatable(tiny_mnist):
    train = load_mnist(True, tiny_mnist)

    def order(seed, epochs=2):
        b = Batches(train, 600, generator=torch.Generator().manual_seed(seed))
        return [next(iter(b))[1].tolist() for _ in range(epochs)]

    first, second = order(0)
    assert first != second  # a new permutation every epoch
    assert order(0) == [first, second]  # the same seed, the same batches
    unshuffled = next(iter(Batches(train, 600, shuffle=False)))[1]
    assert torch.equal(unshuffled, train.labels)


def test_sample_access_by_index_and_label(tiny_mnist):
    test = load_mnist(False, tiny_mnist)
    img, label = test.sample(3)
    assert img.shape == (28, 28) and img.dtype == torch.float32 and label == 3
    sevens = test.indices_of(7)
    assert len(sevens) == 20 and all(test.labels[i] == 7 for i in sevens)


def test_missing_files_give_one_clear_error(tmp_path):
    with pytest.raises(DataError) as e:
        load_mnist(True, tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "MNIST_ROOT" in msg
    assert all(name in msg for name in MNIST_FILES)


def test_failed_download_gives_the_same_error(tmp_path, monkeypatch):
    from torchvision import datasets

    def offline(self, *a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(datasets.MNIST, "download", offline)
    with pytest.raises(DataError, match="could not be downloaded"):
        load_mnist(True, tmp_path / "fresh")


def test_partial_folder_is_reported(tmp_path):
    make_tiny_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(False, tmp_path, download=False)
