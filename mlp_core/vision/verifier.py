"""The verifier: is a candidate one whole digit, not half of one, a stray stroke or two digits?

The classifier was trained on whole, centred digits and answers confidently about anything it
is shown, so reading a number needs a second opinion (LeCun et al. 1998 trained theirs on
pieces and pairs cut from real digits). The verifier is a small MLP apart from the classifier,
so that any model a user trains still reads numbers: 784 pixels plus segment's seven features
(size, place, ink crossed by the cuts at its ends, neighbours) -> hidden -> one logit.

It learns from numbers composed of MNIST's *training* digits (slanted, scaled, spaced from
apart to overlapping, some with a stroke broken), photographed (paper, a dark board, a phone
photo; PNG or JPEG) and cut exactly as a user's picture is (`find_ink`, then
`segment.cut_number`): each candidate's target is how nearly it is one whole digit (the
smaller of the share of the digit it holds and the share of its ink that digit owns).
`python -m mlp_core train-verifier` reproduces the shipped `models/verifier.pt`.
"""

import functools
import io
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import nn

from ..checkpoint import ModelFileError, load_checked, read_tensors, write_atomically
from ..layers import Linear, ReLU, Sequential
from ..model import N_PIXELS
from ..optim import Adam
from .decode import ImageError
from .digits import find_ink
from .segment import N_FEATURES, cut_number

FORMAT = "mlp_core.verifier/1"
MAX_FILE_BYTES = 4 * 2**20  # the shipped verifier is about 0.8 MB
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "verifier.pt"
_GAPS = (-0.15, 0.5)  # gaps between composed digits, in digit heights: overlapping to apart


@dataclass
class VerifierRecipe:
    hidden: tuple[int, ...] = (256,)  # one hidden layer: about 0.8 MB of weights
    numbers: int = 16000  # numbers of 2-4 training digits composed and cut into candidates
    epochs: int = 20  # passes over the candidates
    lr: float = 0.002  # Adam's step size
    batch_size: int = 256  # candidates per step
    seed: int = 0  # the numbers composed and the initial weights

    @classmethod
    def from_dict(cls, d: dict) -> "VerifierRecipe":
        """A recipe from a file's plain values; anything malformed is a ModelFileError."""
        names = {f.name for f in fields(cls)}
        hidden = d.get("hidden")
        if set(d) != names or not isinstance(hidden, (list, tuple)) or not hidden:
            raise ModelFileError("The verifier file's recipe is not valid.")
        if not all(isinstance(n, int) and 1 <= n <= 4096 for n in hidden):
            raise ModelFileError("The verifier file's hidden sizes are not valid.")
        return cls(**{**d, "hidden": tuple(hidden)})


class Verifier(nn.Module):
    """Pixels and features -> Linear + ReLU per hidden layer -> one logit: "one whole digit"."""

    def __init__(self, hidden: tuple[int, ...] = (256,)):
        super().__init__()
        sizes = (N_PIXELS + N_FEATURES, *hidden, 1)
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [Linear(n_in, n_out, init="kaiming")] + ([ReLU()] if i < len(hidden) else [])
        self.main = Sequential(*layers)

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        xf = torch.cat([x.reshape(len(x), -1), features], dim=1)  # (B, 784 + N_FEATURES)
        return self.main(xf)[:, 0]  # (B,) logits

    @torch.no_grad()
    def whole(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(B,) probabilities that each candidate is one whole digit."""
        self.eval()
        return torch.sigmoid(self(x.float(), features.float()))


# --- numbers composed from MNIST digits, cut as a picture's would be --------------------------


def _glyph(digit: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """One MNIST digit as ink in [0, 1]: scaled to about `height`, sometimes wider, slanted,
    sometimes with a thin band erased across it (a pen that skipped, a 5's flag apart)."""
    img = Image.fromarray(digit).crop(Image.fromarray(digit).getbbox())
    h = int(height * rng.uniform(0.85, 1.15))
    w = max(
        1, round(img.width * h / img.height * (rng.uniform(1, 1.6) if rng.random() < 0.15 else 1))
    )
    slant = rng.uniform(-0.45, 0.45)
    pad = int(abs(slant) * h) + 2
    big = Image.new("L", (w + 2 * pad, h), 0)
    big.paste(img.resize((w, h), Image.Resampling.BILINEAR), (pad, 0))
    big = big.transform(big.size, Image.Transform.AFFINE, (1, slant, -slant * h, 0, 1, 0),
                        Image.Resampling.BILINEAR)  # fmt: skip
    g = np.asarray(big, np.float32) / 255  # (h, w')
    if rng.random() < 0.2:
        y = int(rng.uniform(0.15, 0.6) * h)
        g = g.copy()
        g[y : y + max(2, h // 14)] = 0
    return g[:, g.max(axis=0) > 0.05]


def compose_number(images: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """2-4 digits from images (N, 28, 28) uint8 in a row: ink (H, W) in [0, 1] and which digit
    owns each pixel (H, W) int, -1 for none."""
    height = int(rng.integers(28, 80))
    glyphs = [
        _glyph(images[k], rng, height) for k in rng.integers(0, len(images), rng.integers(2, 5))
    ]
    gap = rng.uniform(*_GAPS)  # one spacing per number, a little varied per pair
    xs = [height // 2]
    for g in glyphs[:-1]:
        xs.append(xs[-1] + g.shape[1] + int(height * (gap + rng.uniform(-0.05, 0.05))))
    width = max(x + g.shape[1] for x, g in zip(xs, glyphs)) + height // 2
    ink = np.zeros((2 * height, width), np.float32)
    owner = np.full(ink.shape, -1)
    for k, (x, g) in enumerate(zip(xs, glyphs)):
        y = (
            height // 3
            + int(rng.integers(0, height // 6 + 1))
            + (height * 115 // 100 - g.shape[0]) // 2
        )
        at = np.s_[y : y + g.shape[0], x : x + g.shape[1]]
        owner[at] = np.where(g > ink[at], k, owner[at])
        ink[at] = np.maximum(ink[at], g)
    return ink, np.where(ink > 0, owner, -1)


def photograph(ink: np.ndarray, rng: np.random.Generator) -> bytes:
    """Ink (H, W) in [0, 1] as a picture a user might send: pen on paper, chalk on a dark
    board, or a phone photo (tinted, unevenly lit, noisy, a little blurred); PNG or JPEG."""
    h, w = ink.shape
    style = rng.choice(["paper", "board", "photo"], p=[0.3, 0.2, 0.5])
    paper, pen = {"paper": (rng.uniform(225, 255), rng.uniform(0, 60)),
                  "board": (rng.uniform(0, 60), rng.uniform(180, 255)),
                  "photo": (rng.uniform(150, 235), rng.uniform(20, 110))}[style]  # fmt: skip
    img = paper * (1 - ink) + pen * ink  # (H, W)
    if style == "photo":
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        a = rng.uniform(0, 2 * np.pi)
        img = img * (1 + rng.uniform(0.05, 0.2) * (np.cos(a) * xx + np.sin(a) * yy - 0.5))
        img = img + rng.normal(0, rng.uniform(1, 7), img.shape)
    out = Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8))
    if style == "photo":
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    buf = io.BytesIO()
    if rng.random() < 0.5:
        out.save(buf, "JPEG", quality=int(rng.integers(60, 95)))
    else:
        out.save(buf, "PNG")
    return buf.getvalue()


def examples(images: np.ndarray, n: int, rng: np.random.Generator):
    """Candidates cut from n composed numbers, each photographed and cut exactly as a user's
    picture is: pictures (N, 28, 28), features (N, F) and targets (N,) in [0, 1], how nearly
    each is one whole digit (the smaller of the share of a digit it holds and the share of its
    ink that digit owns)."""
    xs, fs, ts = [], [], []
    for _ in range(n):
        ink, owner = compose_number(images, rng)
        try:
            _, _, cands = cut_number(find_ink(photograph(ink, rng)))
        except ImageError:  # a number the reader refuses teaches nothing
            continue
        sizes = np.bincount(owner[ink > 0.4], minlength=4)  # each digit's ink
        for c in cands:
            left, top, right, bottom = c.box
            mine = owner[top:bottom, left:right][c.mask]
            mine = np.bincount(mine[mine >= 0], minlength=4)  # each digit's ink in c
            share = np.max(np.minimum(mine / np.maximum(sizes, 1), mine / c.mask.sum()))
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
    opt = Adam(model.parameters(), lr=recipe.lr)
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(t))
        total = 0.0
        for i in range(0, len(t), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            loss = F.binary_cross_entropy_with_logits(model(x[idx], f[idx]), t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        log(f"epoch {epoch + 1}: loss {total / len(t):.4f}")
    tx, tf, tt = examples(
        test_images, max(50, recipe.numbers // 6), np.random.default_rng(recipe.seed + 1)
    )
    record = {
        **score(model, tx, tf, tt),
        "train_candidates": len(t),
        "seconds": round(time.perf_counter() - began, 1),
    }
    return model.eval(), record


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


def save_verifier(path, model: Verifier, recipe: VerifierRecipe, record: dict) -> Path:
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "recipe": {**asdict(recipe), "hidden": list(recipe.hidden)},
        "record": dict(record),
    }
    return write_atomically(path, payload)


def load_verifier(source) -> Verifier:
    """Load a verifier file (path or bytes) with weights_only=True and check it, or raise
    ModelFileError."""
    obj = read_tensors(source, MAX_FILE_BYTES)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelFileError("This file is not an mlp_core verifier file.")
    state, fields_ = obj.get("state_dict"), obj.get("recipe")
    if not isinstance(state, dict) or not isinstance(fields_, dict):
        raise ModelFileError("This file is not an mlp_core verifier file.")
    model = Verifier(VerifierRecipe.from_dict(fields_).hidden)
    load_checked(model, state, "a Verifier")
    return model.eval()


@functools.lru_cache(maxsize=1)
def shipped_verifier() -> Verifier:
    """The verifier shipped beside models/default.pt, loaded once."""
    return load_verifier(SHIPPED)
