"""Cut a number's ink into candidate digits: pieces, cuts inside wide pieces, runs of neighbours.

Reading is driven by recognition (LeCun, Bottou, Bengio, Haffner 1998, section VI, "heuristic
over-segmentation"): cut generously and let the networks judge. `atoms` cuts the ink into
small parts, left to right: each connected piece (pieces that stand above one another, the
halves of a broken stroke or a 5's flag over its body, count as one), and a wide piece again
at its thin columns (where touching digits meet), so that every digit is a run of
neighbouring atoms. `runs`
lists the runs of 1 to MAX_RUN atoms narrow enough to be one digit, and `crop` turns a run
into the 28x28 picture the classifier reads, plus its size and place against the line's
digits, which the verifier also weighs. The verifier is trained on exactly these crops.
"""

from dataclasses import dataclass

import numpy as np

from .digits import Preprocessed, grow, to_mnist
from .pieces import Components

MAX_RUN = 3  # atoms in one digit at most: a 5's flag and body, a wide 0 cut in three
_CUT_FROM = 0.6  # a piece this many digit heights wide may be touching digits: cut it
_CUT_MARGIN = 0.1  # digit heights: no cut nearer a piece's end (a 1 is about this wide)
_CUT_APART = 0.18  # digit heights between two cuts of one piece, at least
_CUT_EVERY = 0.4  # at most one cut per this many digit heights of a piece's width
_WIDEST = 1.4  # a run wider than this many digit heights is never one digit
N_FEATURES = 7  # what the verifier sees besides the 28x28 picture (see `crop`)


@dataclass(frozen=True)
class Line:
    """The row of digits: the size and place that a candidate is measured against."""

    height: float  # px: the typical height of its tall pieces
    middle: float  # px: their typical vertical centre


@dataclass(frozen=True)
class Atom:
    """Columns [left, right) of pieces of ink standing above one another: all of them, or a
    part between two cuts."""

    pieces: tuple[int, ...]  # indices into the Components
    left: int
    right: int


@dataclass(frozen=True)
class Candidate:
    """A run of atoms read as one digit."""

    prep: Preprocessed  # what the classifier and the verifier see
    features: np.ndarray  # (N_FEATURES,) float32, in digit heights: see `crop`
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the picture, px
    mask: np.ndarray  # (bottom - top, right - left) bool: its ink


def line_of(parts: Components, keep: np.ndarray) -> Line:
    """The median height and centre of the digits' ink: of the kept pieces taken with those
    standing above or below them (a 5's flag and body, a broken stroke's halves), those at
    least half as tall as the tallest."""
    stacks = _stacks(parts, keep)
    top = np.array([parts.top[g].min() for g in stacks])
    bottom = np.array([parts.bottom[g].max() for g in stacks])
    tall = bottom - top >= 0.5 * (bottom - top).max()
    return Line(float(np.median((bottom - top)[tall])), float(np.median((top + bottom)[tall] / 2)))


def atoms(parts: Components, keep: np.ndarray, line: Line) -> list[Atom]:
    """The kept pieces, those standing above one another together, wide ones cut at thin
    columns; sorted by their centres left to right."""
    out = []
    for g in _stacks(parts, keep):
        left, right = int(parts.left[g].min()), int(parts.right[g].max())
        edges = [left, *_cuts(parts, g, line.height), right]
        out += [Atom(tuple(g), a, b) for a, b in zip(edges, edges[1:])]
    return sorted(out, key=lambda a: a.left + a.right)


def _stacks(parts: Components, keep: np.ndarray) -> list[list[int]]:
    """The kept pieces in groups that stand above one another: most of the narrower one's
    columns shared and few of the shorter one's rows (two digits side by side share rows)."""
    group = {i: [i] for i in keep.tolist()}
    for i in keep.tolist():
        for j in keep.tolist():
            if group[i] is group[j]:
                continue
            x = min(parts.right[i], parts.right[j]) - max(parts.left[i], parts.left[j])
            y = min(parts.bottom[i], parts.bottom[j]) - max(parts.top[i], parts.top[j])
            narrow = min(parts.width[i], parts.width[j])
            short = min(parts.height[i], parts.height[j])
            if x >= 0.6 * narrow and y <= 0.3 * short:
                merged = group[i] + group[j]
                for k in merged:
                    group[k] = merged
    return list({id(g): g for g in group.values()}.values())


def _cuts(parts: Components, g: list[int], height: float) -> list[int]:
    """Columns where pieces g may be two touching digits: the thinnest local minima of their
    ink per column, apart from each other and from their ends."""
    left, right = int(parts.left[g].min()), int(parts.right[g].max())
    if right - left < _CUT_FROM * height:
        return []
    top, bottom = int(parts.top[g].min()), int(parts.bottom[g].max())
    box = np.isin(parts.labels[top:bottom, left:right], np.asarray(g) + 1)  # (h, w)
    ink = np.convolve(box.sum(axis=0), np.ones(3) / 3, mode="same")  # (w,) smoothed
    margin, apart = max(2, int(_CUT_MARGIN * height)), max(2, int(_CUT_APART * height))
    most = int((right - left) / (_CUT_EVERY * height))
    chosen: list[int] = []
    for c in np.argsort(ink[margin:-margin], kind="stable") + margin:
        if ink[c] > ink[max(0, c - 2) : c + 3].min():
            continue  # not a local minimum: a cut here would cross more ink than one beside it
        if all(abs(c - d) >= apart for d in chosen):
            chosen.append(int(c))
            if len(chosen) >= most:
                break
    return sorted(left + c for c in chosen)


def runs(atoms: list[Atom], line: Line) -> list[tuple[int, int]]:
    """(i, j) for each run atoms[i:j] that may be one digit: 1 to MAX_RUN neighbours, no
    wider than _WIDEST digit heights (a single atom always, so every reading exists)."""
    out = []
    for i in range(len(atoms)):
        left, right = atoms[i].left, atoms[i].right
        for j in range(i + 1, min(i + MAX_RUN, len(atoms)) + 1):
            left, right = min(left, atoms[j - 1].left), max(right, atoms[j - 1].right)
            if j > i + 1 and right - left > _WIDEST * line.height:
                break
            out.append((i, j))
    return out


def crop(parts: Components, x: np.ndarray, found: list[Atom], i: int, j: int, line: Line):
    """The run found[i:j]'s ink (from x: background 0, ink 1) as MNIST's 28x28, and the
    verifier's features, all in digit heights: the run's width and height, its centre's
    offset from the line's (a 5's flag alone is short and high, two digits together wide),
    the ink a cut crosses at its left and right end (0 where no piece is cut), and how far the
    atoms just before and after it stand in its columns (the body under a lone flag) or, less
    than 0, how far they stand apart."""
    run = found[i:j]
    pieces = [p for a in run for p in a.pieces]
    left, right = min(a.left for a in run), max(a.right for a in run)
    top, bottom = int(parts.top[pieces].min()), int(parts.bottom[pieces].max())
    labels = parts.labels[top:bottom, left:right]  # (h, w)
    cols = np.arange(left, right)
    mask = np.zeros(labels.shape, bool)
    for a in run:
        mask |= (
            np.isin(labels, np.asarray(a.pieces) + 1) & ((cols >= a.left) & (cols < a.right))[None]
        )
    soft = np.where(grow(mask, 2), x[top:bottom, left:right], 0)  # with its antialiased edge
    prep = to_mnist(soft, mask, bridge=len(set(pieces)) > 1)
    rows = np.flatnonzero(mask.any(axis=1))  # a cut piece's part may be shorter than the piece
    h = line.height
    mid = top + (rows[0] + rows[-1] + 1) / 2
    features = np.array(
        [
            (right - left) / h,
            (rows[-1] + 1 - rows[0]) / h,
            (mid - line.middle) / h,
            _cut_ink(parts, run[0], run[0].left) / h,
            _cut_ink(parts, run[-1], run[-1].right - 1) / h,
            _overlap(found[i - 1], left, right) / h if i > 0 else 0.0,
            _overlap(found[j], left, right) / h if j < len(found) else 0.0,
        ],
        np.float32,
    )
    return Candidate(prep, np.clip(features, -4, 4), (left, top, right, bottom), mask)


def _cut_ink(parts: Components, a: Atom, col: int) -> int:
    """Pixels of a's pieces in column col where that column is a cut, else 0."""
    g = list(a.pieces)
    if parts.left[g].min() < col < parts.right[g].max() - 1:
        return int(np.isin(parts.labels[:, col], np.asarray(g) + 1).sum())
    return 0


def _overlap(a: Atom, left: int, right: int) -> int:
    """Columns of [left, right) that atom a also spans; less than 0: the empty columns between."""
    return min(a.right, right) - max(a.left, left)
