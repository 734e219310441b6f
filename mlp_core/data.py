"""MNIST as whole tensors, and fast mini-batches cut from them.

The notebook's DataLoader turns every image into a PIL picture and back into a
tensor, one at a time, every epoch; that costs more than the maths. Here each
split is read once into a single uint8 tensor (60000, 28, 28), moved to the
training device whole, and every batch is an index into it, converted to float
only when used.
"""

import functools
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UserError
from .files import read_regular_file

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataError(UserError, RuntimeError):
    """MNIST could not be found, fetched or read; the message says which file and why."""


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """Where MNIST lives: `data_dir`, else $MNIST_ROOT, else ./data."""
    return Path(data_dir or os.environ.get("MNIST_ROOT") or "data")


def missing_message(root: Path) -> str:
    raw = root / "MNIST" / "raw"
    return (
        f"MNIST is not in {raw} and could not be downloaded: place the files "
        f"{', '.join(MNIST_FILES)} there (or set MNIST_ROOT to a folder that holds MNIST/raw/)."
    )


@dataclass(frozen=True)
class Split:
    """One split of MNIST: images (N, 28, 28) uint8 and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: str | torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> float32 in [0, 1], what ToTensor gives the notebook."""
    return images.float().div_(255)


IMAGES_MAGIC, LABELS_MAGIC = 0x803, 0x801  # IDX: 0x08 = unsigned bytes, then the number of dims
MAX_IDX_BYTES = 64 * 2**20  # MNIST's largest file is 45 MiB; anything far larger is not MNIST


def read_idx(path: Path, magic: int, dims: tuple[int, ...]) -> torch.Tensor:
    """One IDX file as a uint8 tensor (N, *dims), or DataError saying what is wrong with it.

    The header is big-endian: the magic number, then N and `dims`; the bytes that follow
    must be exactly N * prod(dims), so a truncated or padded file is caught here.
    """
    data = read_regular_file(path, MAX_IDX_BYTES, DataError, "MNIST file")
    name, header = path.name, 4 * (2 + len(dims))
    if len(data) < header:
        raise DataError(f"The MNIST file {name} is too short ({len(data)} bytes) for an IDX file.")
    found, n, *shape = struct.unpack(f">{2 + len(dims)}I", data[:header])
    if found != magic:
        raise DataError(
            f"The MNIST file {name} starts with the magic number {found:#x}, not {magic:#x}; "
            "it is not an MNIST file of that kind."
        )
    if tuple(shape) != dims:
        raise DataError(
            f"The MNIST file {name} holds images of {'x'.join(map(str, shape))} pixels; "
            "MNIST's are 28x28."
        )
    if n == 0:
        raise DataError(f"The MNIST file {name} holds no items.")
    expected = header + n * math.prod(dims)
    if len(data) != expected:
        raise DataError(
            f"The MNIST file {name} is {len(data):,} bytes but its header announces {n:,} items "
            f"({expected:,} bytes); it is truncated or corrupt."
        )
    # bytearray: a writable buffer, so torch neither warns nor needs a second copy
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header).view(n, *dims)


@functools.lru_cache(maxsize=8)
def _load(root: str, train: bool) -> Split:
    raw, prefix = Path(root) / "MNIST" / "raw", "train" if train else "t10k"
    images = read_idx(raw / f"{prefix}-images-idx3-ubyte", IMAGES_MAGIC, (28, 28))
    labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte", LABELS_MAGIC, ())
    if len(images) != len(labels):
        raise DataError(
            f"The MNIST files {prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte do not "
            f"match: {len(images):,} images but {len(labels):,} labels."
        )
    if int(labels.max()) > 9:
        raise DataError(
            f"The MNIST file {prefix}-labels-idx1-ubyte holds a label of {int(labels.max())}; "
            "labels must be 0-9."
        )
    return Split(images, labels.long())  # (N, 28, 28) uint8, (N,) int64


def download_mnist(root: Path) -> None:
    """Fetch the four files into root/MNIST/raw with torchvision, or raise DataError."""
    from torchvision import datasets  # imported here: torchvision is slow to import

    try:
        datasets.MNIST(root=str(root), download=True)
    except Exception as e:  # offline (URLError), a corrupt archive, a read-only folder...
        raise DataError(missing_message(root)) from e


def load_mnist(train: bool = True, data_dir=None, download: bool = True) -> Split:
    """Read one split on the CPU; download only if the files are missing.

    The files are checked (magic numbers, sizes, counts, labels 0-9): a bad one is a
    DataError naming it. Cached per process, so the pages and training runs share one copy.
    """
    root = data_root(data_dir)
    if not mnist_available(root):
        if not download:
            raise DataError(missing_message(root))
        download_mnist(root)
    return _load(str(root), train)


def mnist_available(data_dir=None) -> bool:
    """True if all four MNIST files are already on disk (no download needed)."""
    raw = data_root(data_dir) / "MNIST" / "raw"
    return all((raw / f).exists() for f in MNIST_FILES)


class Batches:
    """Shuffled mini-batches from a Split held on `device`.

    Each pass (epoch) draws a new permutation from `generator`, so a seeded
    generator gives the same batches in the same order, on any device.
    """

    def __init__(
        self, split: Split, batch_size: int, device="cpu", shuffle=True, generator=None,
        augment=None,
    ):  # fmt: skip
        self.split = split.to(device)
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator
        self.augment = augment  # optional fn(x, generator) -> x, applied to each float batch

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)  # ceil: the last batch may be partial

    def __iter__(self):
        n, device = len(self.split), self.split.labels.device
        if self.shuffle:  # drawn on the CPU so the order doesn't depend on the device
            order = torch.randperm(n, generator=self.generator).to(device)
        for i in range(0, n, self.batch_size):
            if self.shuffle:
                idx = order[i : i + self.batch_size]
                xb, yb = self.split.images[idx], self.split.labels[idx]
            else:
                xb = self.split.images[i : i + self.batch_size]
                yb = self.split.labels[i : i + self.batch_size]
            xb = to_float(xb)  # (B, 28, 28) float32
            if self.augment is not None:
                xb = self.augment(xb, self.generator)
            yield xb, yb  # (B, 28, 28), (B,) int64
