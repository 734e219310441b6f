"""The verifier: is a candidate one whole digit, not half of one, a stray stroke or two digits?

The classifier was trained on whole, centred digits and answers confidently about anything it
is shown, so reading a number needs a second opinion (LeCun et al. 1998 trained theirs on
pieces and pairs cut from real digits). The verifier is a small MLP apart from the classifier,
so that any model a user trains still reads numbers: 784 pixels plus segment's seven features
(size, place, ink crossed by the cuts at its ends, neighbours) -> hidden -> one logit.

It learns from numbers composed of MNIST's *training* digits (slanted, scaled, spaced from
apart to overlapping, some with a stroke broken), photographed (paper, a dark board, a phone
photo; PNG or JPEG) and cut exactly as a user's picture is, in the coarse cutting
(compose.py: `find_ink`, then `segment.cut_number`): each candidate's target is how nearly
it is one whole digit (the smaller of the share of the digit it holds and the share of its
ink that digit owns).
`python -m mlp_core train-verifier` reproduces the shipped `models/verifier.pt`.
"""

import functools
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import ModelFileError, load_checked, read_tensors, write_atomically
from ..layers import Linear, ReLU, Sequential
from ..model import N_PIXELS
from ..optim import Adam
from .compose import cut_numbers
from .segment import N_FEATURES

FORMAT = "mlp_core.verifier/1"
MAX_FILE_BYTES = 8 * 2**20  # the shipped verifier is about 0.8 MB, the pair reader 3.7 MB
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "verifier.pt"


@dataclass
class VerifierRecipe:
    hidden: tuple[int, ...] = (256,)  # one hidden layer: about 0.8 MB of weights
    numbers: int = 16000  # numbers of 2-4 training digits composed and cut into candidates
    epochs: int = 20  # passes over the candidates
    lr: float = 0.002  # Adam's step size
    batch_size: int = 256  # candidates per step
    seed: int = 0  # the numbers composed and the initial weights

    @classmethod
    def from_dict(cls, d: dict, what: str = "verifier"):
        """A recipe from a file's plain values; anything malformed is a ModelFileError."""
        names = {f.name for f in fields(cls)}
        hidden = d.get("hidden")
        if set(d) != names or not isinstance(hidden, (list, tuple)) or not hidden:
            raise ModelFileError(f"The {what} file's recipe is not valid.")
        if not all(isinstance(n, int) and 1 <= n <= 4096 for n in hidden):
            raise ModelFileError(f"The {what} file's hidden sizes are not valid.")
        return cls(**{**d, "hidden": tuple(hidden)})


def mlp(sizes: tuple[int, ...]) -> Sequential:
    """Linear layers of these sizes with a ReLU between each two: the small judges' body."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [Linear(n_in, n_out, init="kaiming")] + ([ReLU()] if i < len(sizes) - 2 else [])
    return Sequential(*layers)


class Verifier(nn.Module):
    """Pixels and features -> Linear + ReLU per hidden layer -> one logit: "one whole digit"."""

    def __init__(self, hidden: tuple[int, ...] = (256,)):
        super().__init__()
        self.main = mlp((N_PIXELS + N_FEATURES, *hidden, 1))

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        xf = torch.cat([x.reshape(len(x), -1), features], dim=1)  # (B, 784 + N_FEATURES)
        return self.main(xf)[:, 0]  # (B,) logits

    @torch.no_grad()
    def whole(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(B,) probabilities that each candidate is one whole digit."""
        self.eval()
        return torch.sigmoid(self(x.float(), features.float()))


# --- numbers composed from MNIST digits, cut as a picture's would be --------------------------


def examples(images: np.ndarray, n: int, rng: np.random.Generator):
    """Candidates cut from n composed numbers, each photographed and cut exactly as a user's
    picture is: pictures (N, 28, 28), features (N, F) and targets (N,) in [0, 1], how nearly
    each is one whole digit (the smaller of the share of a digit it holds and the share of its
    ink that digit owns)."""
    xs, fs, ts = [], [], []
    for _, cands, shares, _ in cut_numbers(images, n, rng):
        for c, share in zip(cands, shares.max(axis=1)):
            xs.append(c.prep.tensor)
            fs.append(c.features)
            ts.append(np.clip((share - 0.75) / 0.17, 0, 1))
    return torch.cat(xs), torch.from_numpy(np.stack(fs)), torch.tensor(ts, dtype=torch.float32)


# --- training, scoring, saving and loading ---------------------------------------------------


def train_verifier(recipe: VerifierRecipe, train_images, test_images, log=print):
    """Compose candidates from the training digits, fit, score on the test digits' candidates.
    Returns the verifier and its record (accuracy on the test candidates, counts, seconds)."""
    began = time.perf_counter()
    rng = np.random.default_rng(recipe.seed)
    torch.manual_seed(recipe.seed)
    x, f, t = examples(train_images, recipe.numbers, rng)
    whole = float((t > 0.5).float().mean())
    log(f"{len(t)} candidates from {recipe.numbers} numbers, {whole:.1%} whole")
    model = Verifier(recipe.hidden)

    def loss_of(i):
        return F.binary_cross_entropy_with_logits(model(x[i], f[i]), t[i])

    fit(model, len(t), recipe, loss_of, log)
    tx, tf, tt = examples(
        test_images, max(50, recipe.numbers // 6), np.random.default_rng(recipe.seed + 1)
    )
    record = {
        **score(model, tx, tf, tt),
        "train_candidates": len(t),
        "seconds": round(time.perf_counter() - began, 1),
    }
    return model.eval(), record


def fit(model: nn.Module, n: int, recipe: VerifierRecipe, loss_of, log, decay: bool = False):
    """Adam over n examples in shuffled batches for recipe.epochs passes; `loss_of(indices)`
    gives a batch's loss. `decay`: the step size falls linearly to 0 over the run."""
    opt = Adam(model.parameters(), lr=recipe.lr)
    steps, step = recipe.epochs * -(-n // recipe.batch_size), 0
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(n)
        total = 0.0
        for i in range(0, n, recipe.batch_size):
            if decay:
                opt.lr = recipe.lr * (1 - step / steps)
            idx = order[i : i + recipe.batch_size]
            loss = loss_of(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            step += 1
        log(f"epoch {epoch + 1}: loss {total / n:.4f}")


def score(model: Verifier, x, f, t) -> dict:
    """Accuracy on candidates clearly whole (target > 0.5) or clearly not (< 0.5)."""
    said = model.whole(x, f) > 0.5
    whole = t > 0.5
    return {
        "test_candidates": len(t),
        "test_accuracy": float((said == whole).float().mean()),
        "whole_recall": float(said[whole].float().mean()),
        "part_rejected": float((~said[~whole]).float().mean()),
    }


def save_net(
    path, fmt: str, model: nn.Module, recipe: VerifierRecipe, record: dict, dtype=torch.float32
) -> Path:
    """Write a small judge's file: its format, weights (stored as `dtype`; loading turns them
    back into float32), recipe and test record."""
    payload = {
        "format": fmt,
        "state_dict": {k: v.detach().cpu().to(dtype) for k, v in model.state_dict().items()},
        "recipe": {**asdict(recipe), "hidden": list(recipe.hidden)},
        "record": dict(record),
    }
    return write_atomically(path, payload)


def load_net(source, fmt: str, recipe_cls, build, what: str) -> nn.Module:
    """Load a small judge's file (path or bytes) of format `fmt` with weights_only=True, check
    it and build the model with `build(hidden)`, or raise ModelFileError."""
    obj = read_tensors(source, MAX_FILE_BYTES)
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise ModelFileError(f"This file is not an mlp_core {what} file.")
    state, fields_ = obj.get("state_dict"), obj.get("recipe")
    if not isinstance(state, dict) or not isinstance(fields_, dict):
        raise ModelFileError(f"This file is not an mlp_core {what} file.")
    model = build(recipe_cls.from_dict(fields_, what).hidden)
    load_checked(model, state, f"a {what}")
    return model.eval()


def save_verifier(path, model: Verifier, recipe: VerifierRecipe, record: dict) -> Path:
    return save_net(path, FORMAT, model, recipe, record)


def load_verifier(source) -> Verifier:
    """Load a verifier file (path or bytes) with weights_only=True and check it, or raise
    ModelFileError."""
    return load_net(source, FORMAT, VerifierRecipe, Verifier, "verifier")


@functools.lru_cache(maxsize=1)
def shipped_verifier() -> Verifier:
    """The verifier shipped beside models/default.pt, loaded once."""
    return load_verifier(SHIPPED)
