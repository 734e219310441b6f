"""The pair reader: two digits that overlap, read whole as one picture.

Where two handwritten digits overlap, no cut parts them: any line between them leaves a piece
of each digit on the other's side. Read as one candidate, the two look to the classifier like
some wide digit, and often to the verifier like one whole digit too, so "5158" reads "958".
LeCun et al. (1998) read such a window as two digits at once. The pair reader is a small MLP
of its own, apart from the classifier as the verifier is: the candidate's 28x56 picture (two
MNIST digits side by side, `digits.to_pair`) plus segment's seven features -> hidden -> 21
logits: the left digit's ten, the right digit's ten, and "two whole digits". Reading a number
(numbers.py), each candidate may be read as one digit (classifier and verifier) or as two
(the pair reader); the path search weighs both.

It learns from numbers composed of MNIST's *training* digits as the verifier does
(compose.cut_numbers), most of them with digits touching or overlapping: every candidate
teaches "two whole digits?" (how nearly it holds two neighbouring digits whole, and nothing
else), and a candidate that nearly does teaches their two labels.
`python -m mlp_core train-pairs` reproduces the shipped `models/pairs.pt`.
"""

import functools
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .compose import cut_numbers
from .digits import PAIR_FRAME
from .segment import N_FEATURES
from .verifier import VerifierRecipe, fit, load_net, mlp, save_net

FORMAT = "mlp_core.pairs/1"
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pairs.pt"
N_PAIR_PIXELS = PAIR_FRAME[0] * PAIR_FRAME[1]  # 28 x 56
_NAMES = 0.7  # a candidate holding two digits this nearly whole teaches their labels
_SHIFT = 2  # px: each batch moved by up to this much each way while learning
BLOCK = 500  # numbers per block, each composed from its own seed: see `examples`


@dataclass
class PairRecipe(VerifierRecipe):
    hidden: tuple[int, ...] = (768, 256)
    numbers: int = 100000  # numbers of 2-4 training digits composed and cut into candidates
    epochs: int = 10
    close: float = 0.7  # the share of the numbers with their digits touching or overlapping


class PairReader(nn.Module):
    """A wide picture and features -> Linear + ReLU per hidden layer -> 21 logits: the left
    digit's ten, the right digit's ten, and "two whole digits"."""

    def __init__(self, hidden: tuple[int, ...] = PairRecipe.hidden):
        super().__init__()
        self.main = mlp((N_PAIR_PIXELS + N_FEATURES, *hidden, 21))

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        xf = torch.cat([x.reshape(len(x), -1), features], dim=1)  # (B, 1568 + N_FEATURES)
        return self.main(xf)  # (B, 21)

    @torch.no_grad()
    def read(self, x: torch.Tensor, features: torch.Tensor):
        """Per candidate: the left digit's ten log-probabilities (B, 10), the right one's (B,
        10), and the log-probability that it is two whole digits (B,)."""
        self.eval()
        out = self(x.float(), features.float())
        left, right = F.log_softmax(out[:, :10], 1), F.log_softmax(out[:, 10:20], 1)
        return left, right, F.logsigmoid(out[:, 20])


def examples(images: np.ndarray, labels: np.ndarray, n: int, seed, close: float,
             workers: int = 1, block: int = BLOCK):  # fmt: skip
    """Candidates cut from n composed numbers (a share `close` of them with digits touching or
    overlapping): wide pictures (N, 28, 56) float16, features (N, F), how nearly each holds
    two neighbouring digits whole and nothing else (N,) in [0, 1], and those two digits'
    labels (N, 2). The numbers come in blocks of `block`, block b composed from the seed
    (seed, b): `workers` processes cut them in parallel, and the examples are the same
    however many there are."""
    blocks = [((*np.atleast_1d(seed).tolist(), b), min(block, n - start))
              for b, start in enumerate(range(0, n, block))]  # fmt: skip
    if workers <= 1 or len(blocks) == 1:
        parts = [_block(images, labels, close, *b) for b in blocks]
    else:
        spawn = multiprocessing.get_context("spawn")  # no threads of this process copied
        with ProcessPoolExecutor(min(workers, len(blocks)), spawn, initializer=_worker,
                                 initargs=(images, labels, close)) as pool:  # fmt: skip
            parts = list(pool.map(_worker_block, *zip(*blocks, strict=True)))
    x, f, y, names = (np.concatenate(p) for p in zip(*parts, strict=True))
    return torch.from_numpy(x), torch.from_numpy(f), torch.from_numpy(y), torch.from_numpy(names)


def _block(images, labels, close, seed, n):
    """One block of `examples`, as numpy arrays (they pass between processes whole)."""
    xs, fs, ys, names = [], [], [], []
    for picks, cands, _, two in cut_numbers(images, n, np.random.default_rng(seed), close):
        best = two.argmax(axis=1)  # (C,) the pair each candidate holds most of
        xs += [c.pair[0].half().numpy() for c in cands]
        fs += [c.features for c in cands]
        ys += two[np.arange(len(cands)), best].tolist()
        names += [(int(labels[picks[q]]), int(labels[picks[q + 1]])) for q in best]
    return (np.array(xs, np.float16).reshape(-1, *PAIR_FRAME),
            np.array(fs, np.float32).reshape(-1, N_FEATURES), np.array(ys, np.float32),
            np.array(names, np.int64).reshape(-1, 2))  # fmt: skip


_DIGITS = None  # a worker process's images, labels and close, set once by `_worker`


def _worker(images, labels, close):
    global _DIGITS
    torch.set_num_threads(1)  # one process per core
    _DIGITS = images, labels, close


def _worker_block(seed, n):
    return _block(*_DIGITS, seed, n)


def learn(recipe: PairRecipe, x, f, y, names, log=print) -> PairReader:
    """Fit a pair reader to examples (see `examples`): "two whole digits?" on every candidate,
    towards how nearly it holds two (0 below 0.75, 1 above 0.92, as the verifier learns
    "whole"), and the two digits' names on the candidates that hold them nearly whole. Each
    batch is moved by a pixel or two, so a pair need not sit where the examples put it."""
    torch.manual_seed(recipe.seed)
    target = ((y - 0.75) / 0.17).clamp(0, 1)
    named = y > _NAMES
    model = PairReader(recipe.hidden)

    def loss_of(i):
        dy, dx = torch.randint(-_SHIFT, _SHIFT + 1, (2,)).tolist()
        out = model(torch.roll(x[i].float(), (dy, dx), (1, 2)), f[i])
        loss = F.binary_cross_entropy_with_logits(out[:, 20], target[i])
        k = named[i]
        if k.any():
            both = F.cross_entropy(out[k, :10], names[i][k, 0]) + F.cross_entropy(
                out[k, 10:20], names[i][k, 1]
            )
            loss = loss + k.float().mean() * both
        return loss

    fit(model, len(y), recipe, loss_of, log, decay=True)
    return model.eval()


def score(model: PairReader, x, f, y, names) -> dict:
    """On test candidates: pairs (held > 0.85) said to be two whole digits, others (< 0.5)
    refused, and the pairs' left, right and both digits read right."""
    left, right, two = model.read(x, f)
    said, pair, other = two > np.log(0.5), y > 0.85, y < 0.5
    lr = left[pair].argmax(1) == names[pair, 0], right[pair].argmax(1) == names[pair, 1]
    return {
        "test_candidates": len(y),
        "test_pairs": int(pair.sum()),
        "pairs_found": float(said[pair].float().mean()),
        "others_refused": float((~said[other]).float().mean()),
        "left_right": float(lr[0].float().mean()),
        "right_right": float(lr[1].float().mean()),
        "both_right": float((lr[0] & lr[1]).float().mean()),
    }


def train_pair_reader(recipe: PairRecipe, train, test, log=print, workers: int = 1):
    """Compose candidates from the training split's digits (a data.Split), fit, score on the
    test split's. Returns the pair reader and its record (the test figures, counts, seconds).
    `workers`: processes cutting the numbers; the model is the same for any number."""
    began = time.perf_counter()
    x, f, y, names = examples(train.images.numpy(), train.labels.numpy(), recipe.numbers,
                              (recipe.seed, 0), recipe.close, workers)  # fmt: skip
    log(f"{len(y)} candidates from {recipe.numbers} numbers, {int((y > _NAMES).sum())} pairs")
    model = learn(recipe, x, f, y, names, log)
    tests = max(50, recipe.numbers // 6)
    held_out = examples(test.images.numpy(), test.labels.numpy(), tests, (recipe.seed, 1),
                        recipe.close, workers)  # fmt: skip
    record = {
        **score(model, *held_out),
        "train_candidates": len(y),
        "seconds": round(time.perf_counter() - began, 1),
    }
    return model, record


def save_pair_reader(path, model: PairReader, recipe: PairRecipe, record: dict) -> Path:
    """Write a pair reader file, its weights in float16: half the size (1.9 MB), and reading
    the same numbers (the record is measured before they are rounded)."""
    return save_net(path, FORMAT, model, recipe, record, torch.float16)


def load_pair_reader(source) -> PairReader:
    """Load a pair reader file (path or bytes) with weights_only=True and check it, or raise
    ModelFileError."""
    return load_net(source, FORMAT, PairRecipe, PairReader, "pair reader")


@functools.lru_cache(maxsize=1)
def shipped_pair_reader() -> PairReader:
    """The pair reader shipped beside models/default.pt, loaded once."""
    return load_pair_reader(SHIPPED)
