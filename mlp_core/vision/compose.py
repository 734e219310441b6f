"""Numbers composed of MNIST digits, photographed as users send them, and cut as reading cuts
them: what the verifier learns from (`verifier.examples`) and the cut-out digits that a
classifier may learn from besides MNIST's own pictures (`cut_digits`, the recipe's
`cut_numbers`).

A digit cut out of a photo is not MNIST's picture of it: the photo's light and blur, the line's
slant, the strokes evened to MNIST's width, a neighbour's ink at a cut. A classifier trained on
MNIST alone reads the whole digits that `segment.cut_number` cuts from photos of MNIST's test
digits about 1.4 points worse than it reads MNIST's own pictures of them (97.7% against 99.1%).
"""

import io

import numpy as np
import torch
from PIL import Image, ImageFilter

from ..data import Split
from .decode import ImageError
from .digits import find_ink
from .segment import cut_number

_GAPS = (-0.15, 0.5)  # gaps between composed digits, in digit heights: overlapping to apart
CLOSE = (-0.15, 0.05)  # gaps of touching and overlapping digits, for the pair reader
WHOLE = 0.92  # a candidate holding this share of a digit, and of whose ink it owns this share,
# is that digit whole


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


def compose_number(
    images: np.ndarray, rng: np.random.Generator, gaps: tuple[float, float] = _GAPS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-4 digits from images (N, 28, 28) uint8 in a row, spaced within `gaps` (digit heights):
    ink (H, W) in [0, 1], which digit owns each pixel (H, W) int, -1 for none, and the
    digits' indices into images (k,)."""
    height = int(rng.integers(28, 80))
    picks = rng.integers(0, len(images), rng.integers(2, 5))  # (k,)
    glyphs = [_glyph(images[i], rng, height) for i in picks]
    gap = rng.uniform(*gaps)  # one spacing per number, a little varied per pair
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
    return ink, np.where(ink > 0, owner, -1), picks


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


def cut_numbers(images: np.ndarray, n: int, rng: np.random.Generator, close: float = 0.0):
    """Compose n numbers of images' digits, photograph each and cut it exactly as a user's
    picture is, in the coarse cutting; a share `close` of them with digits no further apart
    than CLOSE (touching and overlapping, for the pair reader). Yields, per number the reader
    does not refuse: the digits' indices into images (k,), its candidates, and shares (C, k):
    for each candidate and digit, the smaller of the share of the digit's ink it holds and the
    share of its ink that digit owns; and pair shares (C, k - 1), the same for each two
    neighbouring digits together."""
    for _ in range(n):
        gaps = CLOSE if close and rng.random() < close else _GAPS
        ink, owner, picks = compose_number(images, rng, gaps)
        try:
            [(_, _, cands)] = cut_number(find_ink(photograph(ink, rng)))
        except ImageError:  # a number the reader refuses
            continue
        yield picks, cands, *shares(cands, ink, owner, len(picks))


def shares(cands, ink: np.ndarray, owner: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, k): for each candidate and each of a number's k digits, the smaller of the share of
    the digit's ink the candidate holds and the share of its ink that digit owns; near 1 only
    for that digit whole. And (C, k - 1): the same for each digit and the next together; near
    1 only for that pair whole. `ink` (H, W): coverage in [0, 1]; `owner` (H, W): the digit
    owning each pixel, -1 for none."""
    sizes = np.bincount(owner[ink > 0.4], minlength=k)  # (k,) each digit's ink
    mine = np.zeros((len(cands), k))  # (C, k): each digit's ink in each candidate
    for i, c in enumerate(cands):
        left, top, right, bottom = c.box
        owners = owner[top:bottom, left:right][c.mask]
        mine[i] = np.bincount(owners[owners >= 0], minlength=k)
    total = np.array([c.mask.sum() for c in cands])[:, None]  # (C, 1)
    held = mine / np.maximum(sizes, 1)  # (C, k)
    one = np.minimum(held, mine / total)
    two = np.minimum(np.minimum(held[:, :-1], held[:, 1:]), (mine[:, :-1] + mine[:, 1:]) / total)
    return one, two


def cut_digits(images: np.ndarray, labels: np.ndarray, n: int, seed: int):
    """The whole digits cut from n photographed numbers of images (N, 28, 28) uint8: their
    28x28 pictures as the classifier reads them (M, 28, 28) uint8 and labels (M,) int64, about
    three per number."""
    xs, ys = [], []
    for picks, cands, held, _ in cut_numbers(images, n, np.random.default_rng(seed)):
        best = held.argmax(axis=1)  # (C,) the digit each candidate holds most of
        for c, k, share in zip(cands, best, held.max(axis=1)):
            if share >= WHOLE:
                xs.append(np.asarray(c.prep.preview))  # uint8, exactly what the network reads
                ys.append(int(labels[picks[k]]))
    if not xs:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    return np.stack(xs), np.array(ys, np.int64)


def with_cut_digits(train: Split, n: int, seed: int) -> Split:
    """MNIST's training split followed by the whole digits cut from n numbers of its digits
    (the recipe's `cut_numbers`): the network learns both MNIST's pictures and digits as the
    number reader cuts them out of photos."""
    images, labels = cut_digits(train.images.numpy(), train.labels.numpy(), n, seed)
    return Split(
        torch.cat([train.images, torch.from_numpy(images)]),
        torch.cat([train.labels, torch.from_numpy(labels)]),
    )
