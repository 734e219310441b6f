"""MNIST loading on tiny IDX files the test writes, and the fast batches."""

import os
import struct
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_mnist, write_idx
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


def spoil(root: Path, name: str, edit) -> Path:
    """Tiny MNIST in `root` whose file `name` is replaced by edit(its bytes)."""
    make_tiny_mnist(root)
    f = root / "MNIST" / "raw" / name
    f.write_bytes(edit(f.read_bytes()))
    return root


LABEL_200 = 8 + 17  # the 18th test label: after the 8-byte header
BAD_IDX = {  # case: (file, how it is spoiled, what the sentence must say)
    "label of 200": (
        "t10k-labels-idx1-ubyte",
        lambda b: b[:LABEL_200] + bytes([200]) + b[LABEL_200 + 1 :],
        "The MNIST file t10k-labels-idx1-ubyte holds a label of 200; labels must be 0-9.",
    ),
    "counts differ": (
        "t10k-labels-idx1-ubyte",
        lambda b: struct.pack(">II", 0x801, 199) + b[8:-1],
        "do not match: 200 images but 199 labels.",
    ),
    "truncated": (
        "t10k-images-idx3-ubyte",
        lambda b: b[:-100],
        "The MNIST file t10k-images-idx3-ubyte is 156,716 bytes but its header announces 200 "
        "items (156,816 bytes); it is truncated or corrupt.",
    ),
    "padded": (
        "t10k-labels-idx1-ubyte",
        lambda b: b + b"\0",
        "t10k-labels-idx1-ubyte is 209 bytes but its header announces 200 items (208 bytes)",
    ),
    "wrong magic": (
        "t10k-images-idx3-ubyte",
        lambda b: struct.pack(">I", 0x801) + b[4:],
        "t10k-images-idx3-ubyte starts with the magic number 0x801, not 0x803",
    ),
    "not 28x28": (
        "t10k-images-idx3-ubyte",
        lambda b: b[:8] + struct.pack(">II", 14, 56) + b[16:],
        "t10k-images-idx3-ubyte holds images of 14x56 pixels; MNIST's are 28x28.",
    ),
    "no header": ("t10k-labels-idx1-ubyte", lambda b: b[:5], "is too short (5 bytes)"),
    "empty": (
        "t10k-labels-idx1-ubyte",
        lambda b: struct.pack(">II", 0x801, 0),
        "t10k-labels-idx1-ubyte holds no items.",
    ),
}


@pytest.mark.parametrize("case", BAD_IDX)
def test_a_bad_idx_file_is_named_with_what_is_wrong(tmp_path, case):
    name, edit, sentence = BAD_IDX[case]
    root = spoil(tmp_path, name, edit)
    with pytest.raises(DataError) as e:
        load_mnist(False, root, download=False)
    assert sentence in str(e.value)
    assert load_mnist(True, root, download=False).images.shape == (600, 28, 28)  # the other split


def test_a_fifo_for_an_mnist_file_is_refused_without_blocking(tmp_path):
    make_tiny_mnist(tmp_path)
    labels = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.unlink()
    os.mkfifo(labels)  # nobody ever writes to it: reading it would wait forever
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is not a regular file"):
        load_mnist(False, tmp_path, download=False)


def test_the_reader_matches_the_bytes_written(tmp_path):
    images, labels = torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8), torch.arange(7)
    write_idx(tmp_path / "MNIST" / "raw", "t10k", images, labels)
    write_idx(tmp_path / "MNIST" / "raw", "train", images, labels)
    test = load_mnist(False, tmp_path, download=False)
    assert torch.equal(test.images, images) and torch.equal(test.labels, labels)
    assert test.labels.dtype == torch.int64 and test.images.is_contiguous()
