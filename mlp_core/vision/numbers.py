"""Read a number: find each digit in a picture, then read each one as a single digit is read.

The network reads one centred 28x28 digit at a time, so a picture of "2026" must first be cut
into its digits. A reader's eye does it by ink: marks that touch belong together. So do we:

    digits.find_ink (decode, even out the lighting, polarity, ink in connected pieces) ->
    drop specks, page edges, frames and lines (pieces.digit_pieces) ->
    join the pieces of one digit (a 5's detached bar, a 4 in two strokes, a broken stroke) ->
    split a piece too wide for one digit (touching digits) where the network reads the parts
    best -> left to right -> each digit: preprocess.stretch and to_mnist -> the network

A digit is the pieces that stand above one another: a 5's bar sits over its body, a broken
stroke's halves over each other; two digits of a number stand side by side. Touching digits
make one piece wider than the number's digits; it is cut into one, two or more parts, each cut
at the column where the network reads the parts best and little ink is crossed, and the number
of parts the network reads most confidently wins. When even that reading is unsure, the answer
says which digits could not be separated with confidence.

Each digit's answer comes with its confidence; below UNSURE the answer names the runner-up
("unsure: 4 or 9") and the number points at its weakest digit.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..metrics import predict_probs
from .decode import ImageError
from .digits import (
    NO_DIGIT_MARKS,
    NOISE,
    Preprocessed,
    find_ink,
    grow,
    stretch,
    to_mnist,
)
from .pieces import Components, digit_pieces, noisy

MAX_DIGITS = 12  # a longer row of marks is text, noise or a texture, not a number
UNSURE = 0.75  # below this top probability, an answer names its runner-up
_WIDE = 1.0  # a piece wider than this many digit heights may be touching digits
_SMALL = 0.4  # a piece smaller than this many digit heights is part of a digit, or punctuation


@dataclass(frozen=True)
class Digit:
    """One digit of a number: the network's answer and what it saw."""

    digit: int
    probabilities: list[float]  # ten, summing to 1
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the picture as read, px
    prep: Preprocessed  # the 28x28 tensor and preview the network saw
    joined: bool = False  # True: cut out of touching digits

    @property
    def confidence(self) -> float:
        return self.probabilities[self.digit]


@dataclass(frozen=True)
class Number:
    """A number read from a picture, digit by digit, left to right."""

    digits: list[Digit]
    problems: list[str]  # sentences about parts that could not be separated

    @property
    def text(self) -> str:
        return "".join(str(d.digit) for d in self.digits)

    @property
    def weakest(self) -> int:
        """Index of the digit the network is least sure of."""
        return int(np.argmin([d.confidence for d in self.digits]))

    @property
    def unsure(self) -> bool:
        return self.digits[self.weakest].confidence < UNSURE or bool(self.problems)

    @property
    def doubt(self) -> str:
        """`digit 3 could be 7`: the weakest digit and its runner-up."""
        rival = int(np.argsort(self.digits[self.weakest].probabilities)[-2])
        return f"digit {self.weakest + 1} could be {rival}"

    def summary(self) -> str:
        """`2026`, or `2026 (unsure: digit 3 could be 7)` when unsure."""
        return f"{self.text} (unsure: {self.doubt})" if self.unsure else self.text

    def lines(self) -> list[str]:
        """One line per digit, the weakest marked when unsure, then any problem."""
        out = [
            f"digit {i + 1}: {verdict(d.probabilities)}"
            + ("  <- weakest" if self.unsure and i == self.weakest else "")
            for i, d in enumerate(self.digits)
        ]
        return out + self.problems

    def as_dict(self) -> dict:
        """Plain values for JSON: the number, each digit's answer, box and probabilities."""
        return {
            "number": self.text,
            "unsure": self.unsure,
            "weakest": self.weakest,
            "problems": self.problems,
            "digits": [
                {"digit": d.digit, "confidence": d.confidence, "box": list(d.box),
                 "probabilities": d.probabilities}
                for d in self.digits
            ],
        }  # fmt: skip


def verdict(probs) -> str:
    """`7 (98.2%)`, or `unsure: 4 or 9 (52.0% / 41.3%)` when the top probability is low."""
    p = np.asarray(probs, dtype=float)
    first, second = np.argsort(p)[::-1][:2]
    if p[first] >= UNSURE:
        return f"{first} ({p[first]:.1%})"
    return f"unsure: {first} or {second} ({p[first]:.1%} / {p[second]:.1%})"


def read_number(
    model: torch.nn.Module, source: bytes | str | os.PathLike | Image.Image | np.ndarray
) -> Number:
    """Find the digits of a number in a picture and read each one; left to right.

    Raises ImageError, with one sentence for the user, for a picture with no digit in it (as
    `preprocess` does) and for one with more than MAX_DIGITS separate marks.
    """
    ink = find_ink(source)
    keep = digit_pieces(ink.parts, ink.mask.shape)  # (k,) piece indices
    if len(keep) == 0:
        raise ImageError(NO_DIGIT_MARKS)
    if noisy(ink.parts, keep):
        raise ImageError(NOISE)
    if len(keep) > 4 * MAX_DIGITS:  # grouping stays cheap: never more than this many pieces
        raise ImageError(_too_many(len(keep)))
    groups = _group(ink.parts, keep)  # lists of piece indices, one per digit, left to right
    if len(groups) > MAX_DIGITS:
        raise ImageError(_too_many(len(groups)))
    x, _ = stretch(ink, np.concatenate(groups))  # (H, W): background 0, ink 1
    height = _digit_height(ink.parts, groups)
    width = _digit_width(ink.parts, groups, height)
    digits, problems = [], []
    for g in groups:
        read, problem = _read_group(model, ink.parts, x, g, height, width, len(digits) + 1)
        digits += read
        problems += [problem] if problem else []
    if len(digits) > MAX_DIGITS:
        raise ImageError(_too_many(len(digits)))
    return Number(digits, problems)


def _read_group(
    model, parts: Components, x: np.ndarray, g: list[int], height: float, width: float, first: int
) -> tuple[list[Digit], str | None]:
    """Read the digit (or, if too wide, the touching digits) of one group of pieces; also a
    sentence when it could not be separated with confidence. `first`: its digit's number."""
    left, top, right, bottom = _box(parts, g)
    labels = parts.labels[top:bottom, left:right]  # (h, w)
    mask = np.isin(labels, np.asarray(g) + 1)  # this digit's ink only, not a neighbour's
    crop = np.where(grow(mask, 2), x[top:bottom, left:right], 0)  # with its soft edges
    cuts = [(0, right - left)]  # column ranges of the crop, one per digit
    if right - left > min(_WIDE * height, 1.6 * width):
        cuts = _best_cut(model, crop, mask, height, width)
    read = []
    for a, b in cuts:
        prep = to_mnist(crop[:, a:b], mask[:, a:b], bridge=len(g) > 1)
        probs = predict_probs(model, prep.tensor)[0].tolist()
        box = (int(left + a), int(top), int(left + b), int(bottom))
        read.append(Digit(int(np.argmax(probs)), probs, box, prep, joined=len(cuts) > 1))
    last = first + len(read) - 1
    if len(cuts) > 1 and min(d.confidence for d in read) < UNSURE:
        return read, f"Digits {first} to {last} touch and could not be separated with confidence."
    if len(cuts) == 1 and right - left > 1.1 * height:
        return read, (
            f"Digit {first} is as wide as several digits: touching digits that could not be "
            "separated."
        )
    return read, None


def _too_many(n: int) -> str:
    return (
        f"The image has no number in it: it has {n} separate marks, more than the "
        f"{MAX_DIGITS} digits a number may have."
    )


def _group(parts: Components, keep: np.ndarray) -> list[list[int]]:
    """Join pieces that stand above one another into digits; drop small marks between them."""
    groups = [[i] for i in sorted(keep.tolist(), key=lambda i: parts.left[i])]
    joined = True
    while joined:  # join one pair at a time until no pair stands above one another
        joined = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                (l1, t1, r1, b1), (l2, t2, r2, b2) = _box(parts, groups[i]), _box(parts, groups[j])
                x_overlap, y_overlap = min(r1, r2) - max(l1, l2), min(b1, b2) - max(t1, t2)
                narrow, short = min(r1 - l1, r2 - l2), min(b1 - t1, b2 - t2)
                # most of the narrower one's columns, and few rows, shared; or one lies in the
                # other's columns almost wholly (the bar of a 4 written in two strokes)
                if x_overlap >= 0.8 * narrow or (
                    x_overlap >= 0.4 * narrow and y_overlap <= 0.5 * short
                ):
                    groups[i] += groups.pop(j)
                    joined = True
                    break
            if joined:
                break
    height = _digit_height(parts, groups)
    groups = _join_short(parts, groups, height)
    boxes = [_box(parts, g) for g in groups]
    large = [
        k for k, (x0, y0, x1, y1) in enumerate(boxes) if max(x1 - x0, y1 - y0) >= _SMALL * height
    ]
    out = {k: list(groups[k]) for k in large}
    for k in set(range(len(groups))) - set(large):
        # a small mark: a stroke's broken-off end when close to a digit, else punctuation
        gaps = [_distance(boxes[k], boxes[d]) for d in large]
        if gaps and min(gaps) < 0.15 * height:
            out[large[int(np.argmin(gaps))]] += groups[k]
    return sorted(out.values(), key=lambda g: parts.left[g].min())


def _join_short(parts: Components, groups: list[list[int]], height: float) -> list[list[int]]:
    """Join a group shorter than the digits to a close neighbour when the two together are no
    wider than one digit: the halves of a 4 whose bar misses its crossbar."""
    groups = list(groups)
    k = 0
    while k < len(groups):
        x0, y0, x1, y1 = _box(parts, groups[k])
        if _SMALL * height <= y1 - y0 < 0.75 * height:
            for n in (k - 1, k + 1):  # the neighbours on the left and on the right
                if 0 <= n < len(groups):
                    both = _box(parts, groups[k] + groups[n])
                    close = _distance((x0, y0, x1, y1), _box(parts, groups[n])) < 0.15 * height
                    if close and both[2] - both[0] <= 0.9 * height:
                        groups[min(k, n)] = groups[k] + groups[n]
                        del groups[max(k, n)]
                        k = -1  # start again: boxes have changed
                        break
        k += 1
    return groups


def _box(parts: Components, g: list[int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a group of pieces."""
    return parts.left[g].min(), parts.top[g].min(), parts.right[g].max(), parts.bottom[g].max()


def _distance(a: tuple, b: tuple) -> float:
    """The gap between two boxes (left, top, right, bottom), 0 where they overlap."""
    dx = max(a[0] - b[2], b[0] - a[2], 0)
    dy = max(a[1] - b[3], b[1] - a[3], 0)
    return float(np.hypot(dx, dy))


def _digit_height(parts: Components, groups: list[list[int]]) -> float:
    """The number's digit height: the median height of its tall groups."""
    heights = np.array([parts.bottom[g].max() - parts.top[g].min() for g in groups])
    return float(np.median(heights[heights >= 0.5 * heights.max()]))


def _digit_width(parts: Components, groups: list[list[int]], height: float) -> float:
    """A typical digit's width: the median of the groups neither as narrow as a 1 nor wide."""
    widths = np.array([parts.right[g].max() - parts.left[g].min() for g in groups])
    single = widths[(widths >= 0.4 * height) & (widths <= 0.9 * height)]
    return float(np.median(single)) if len(single) else 0.65 * height


def _best_cut(
    model, crop: np.ndarray, mask: np.ndarray, height: float, width: float
) -> list[tuple[int, int]]:
    """Cut a wide piece into the k = 1, 2, ... digits the network reads most confidently, the
    k its width suggests being a little preferred. Returns the column range of each part."""
    w = mask.shape[1]
    best, best_score = [(0, w)], -np.inf
    n = max(2, round(w / width))  # typical digits this wide; further k would lose anyway
    for k in range(n - 1, min(MAX_DIGITS, n + 1) + 1):
        ranges = _cut(model, crop, mask, k)
        if ranges is None:
            continue
        score = np.log(_confidence(model, crop, mask, ranges)).mean()
        score -= 0.5 * abs(k - w / width)  # how many typical digits wide the piece is
        if k == 1 and w > 1.1 * height:
            score -= 1.0  # one digit this wide is unlikely: it must read much better to win
        if score > best_score:
            best, best_score = ranges, score
    return best


def _cut(model, crop: np.ndarray, mask: np.ndarray, k: int) -> list[tuple[int, int]] | None:
    """k column ranges, cut left to right: each cut among a few columns near where an even
    share of the rest would end, the one whose part (for the last cut, both parts) the
    network reads best, less the share of ink the cut goes through. Where digits overlap,
    the thinnest column is often inside a digit (the middle of a 0), so the network has the
    larger say. None: no ink for k parts."""
    w = mask.shape[1]
    ink = mask.sum(axis=0) / mask.shape[0]  # (w,) share of each column that is ink
    cuts = [0]
    for j in range(1, k):
        a, step = cuts[-1], (w - cuts[-1]) / (k - j + 1)
        lo, hi = int(a + 0.65 * step), int(a + 1.35 * step) + 1
        thinnest = lo + int(np.argmin(ink[lo:hi])) if hi > lo else lo
        options = np.unique([*np.linspace(lo, hi, 9).astype(int), thinnest])
        options = [c for c in options if a < c < w and mask[:, a:c].any() and mask[:, c:].any()]
        if not options:
            return None
        last = j == k - 1
        # read best, and cut through little ink: touching strokes, not a digit's middle
        scores = [
            np.log(_confidence(model, crop, mask, [(a, c), (c, w)] if last else [(a, c)])).mean()
            - 0.3 * ink[c]
            for c in options
        ]
        cuts.append(options[int(np.argmax(scores))])
    cuts.append(w)
    return list(zip(cuts, cuts[1:]))


def _confidence(model, crop: np.ndarray, mask: np.ndarray, ranges) -> np.ndarray:
    """The network's top probability for each column range of the crop, read as a digit."""
    tensors = torch.cat([to_mnist(crop[:, a:b], mask[:, a:b]).tensor for a, b in ranges])
    return predict_probs(model, tensors).max(dim=1).values.numpy()  # (len(ranges),)
