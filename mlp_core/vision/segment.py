"""Cut a number's ink into candidate digits: pieces, cuts inside wide pieces, runs of neighbours.

Reading is driven by recognition (LeCun, Bottou, Bengio, Haffner 1998, section VI, "heuristic
over-segmentation"): cut generously and let the networks judge. `atoms` cuts the ink into
small parts, left to right: each connected piece (pieces that stand above one another, the
halves of a broken stroke or a 5's flag over its body, count as one), and a wide piece again
where touching digits may meet: along paths from top to bottom that cross little ink, winding
and leaning with the writing (overlapping digits share columns, so no straight line parts
them), and through the dips of its outline between two digits' tops or bottoms (where two
round digits touch, the ink there is thick). Every digit is then a run of neighbouring
atoms. `runs` lists the runs of a few atoms narrow enough to be one digit, and `crop` turns
a run into the 28x28 picture the classifier reads, plus its size and place against the
line's digits, which the verifier also weighs. `cut_number` does all of it for a picture's
ink, coarsely or finely (a `Cutting`): the reader reads both cuttings, and the verifier is
trained on exactly what the coarse one gives.
"""

from dataclasses import dataclass

import numpy as np
import torch

from .decode import ImageError
from .digits import NO_DIGIT_MARKS, NOISE, InkMap, Preprocessed, grow, stretch, to_mnist, to_pair
from .pieces import SMALL, Components, columns, digit_pieces, noisy

MAX_DIGITS = 12  # a longer row of marks is text, noise or a texture, not a number
_CUT_FROM = 0.6  # a piece this many digit heights wide may be touching digits: cut it
_CUT_MARGIN = 0.1  # digit heights: no cut nearer a piece's end (a 1 is about this wide)
_CUT_BAND = 0.08  # digit heights: how far a cut may wind either side of its straight line
_CUT_SLANTS = (-0.3, 0.0, 0.3)  # the leans of a cut's straight line, columns per row up
_SIDEWAYS = 0.2  # a cut's cost per sideways step, in ink pixels: straighter cuts preferred
_SLIVER = 0.03  # digit heights squared: less ink than this beside a cut is no part of its own
_DIP = 0.12  # digit heights: how deep an outline's dip between two digits' tops is, at least
_DIP_SPAN = 0.3  # digit heights either side of a dip where the outline must stand higher
_CUT_ROWS = 40  # cuts are found on a copy of a tall piece shrunk to at most this many rows
_WIDEST = 1.8  # a run wider than this many digit heights is never one digit
N_FEATURES = 7  # what the verifier sees besides the 28x28 picture (see `crop`)


@dataclass(frozen=True)
class Cutting:
    """How finely a wide piece is cut into atoms, and how many atoms one digit may be."""

    every: float  # at most one cut per this many digit heights of a piece's width
    apart: float  # digit heights between two cuts of one piece, at least
    run: int  # atoms in one digit at most: a 5's flag and body, a wide 0 cut in three or four


# Each picture is cut both ways and read both ways; the reading that scores best wins. The
# coarse cutting keeps a wide digit in few atoms; the fine one has a cut nearer the place where
# two overlapping digits part. Each reads numbers the other misreads. The verifier learns
# from the coarse cutting's candidates.
COARSE, FINE = Cutting(every=0.4, apart=0.18, run=4), Cutting(every=0.25, apart=0.12, run=5)
CUTTINGS = (COARSE, FINE)


@dataclass(frozen=True)
class Line:
    """The row of digits: the size and place that a candidate is measured against."""

    height: float  # px: the typical height of its tall pieces
    middle: float  # px: their typical vertical centre


@dataclass(frozen=True, eq=False)
class Atom:
    """Pieces of ink standing above one another: all of them, or the part between two cuts.
    A cut follows the ink (see `_cuts`), so a part's columns may change from row to row."""

    pieces: tuple[int, ...]  # indices into the Components
    left: int  # columns [left, right) of its ink
    right: int
    top: int  # the first row of `bounds`
    bounds: np.ndarray  # (h, 2) int: per row from `top`, the columns [start, end) it owns
    cut_in: int = 0  # ink pixels its left cut crosses (0: no cut, the piece's own end)
    cut_out: int = 0  # ink pixels its right cut crosses

    def owns(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """(bottom - top, right - left) bool: which pixels of that box are its territory."""
        rows = np.arange(top, bottom) - self.top  # (h,)
        inside = (rows >= 0) & (rows < len(self.bounds))
        b = self.bounds[np.clip(rows, 0, len(self.bounds) - 1)]  # (h, 2)
        cols = np.arange(left, right)[None]  # (1, w)
        return inside[:, None] & (cols >= b[:, :1]) & (cols < b[:, 1:])


@dataclass(frozen=True)
class Candidate:
    """A run of atoms read as one digit."""

    prep: Preprocessed  # what the classifier and the verifier see
    features: np.ndarray  # (N_FEATURES,) float32, in digit heights: see `crop`
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the picture, px
    mask: np.ndarray  # (bottom - top, right - left) bool: its ink
    pair: torch.Tensor  # (1, 28, 56): what the pair reader sees, were it two digits


def cut_number(
    ink: InkMap, cuttings: tuple[Cutting, ...] = (COARSE,)
) -> list[tuple[list[Atom], list[tuple[int, int]], list[Candidate]]]:
    """A number's ink cut each of `cuttings`' ways: per cutting, its atoms, the runs that may
    be digits, and each run's candidate (the verifier is trained on exactly what this gives a
    picture with the COARSE cutting). The pieces are found once for all the cuttings, and a
    run that two cuttings cut alike is cropped once.

    Drops specks, page edges, frames and lines, and punctuation. Raises ImageError, with one
    sentence for the user, where there is no digit, where the ink is noise, and where there
    are more separate marks than a number of MAX_DIGITS digits has; the work stays bounded. A
    later cutting that would make too many atoms is left out: the first still reads it.
    """
    keep = digit_pieces(ink.parts, ink.mask.shape)  # (k,) piece indices
    if len(keep) == 0:
        raise ImageError(NO_DIGIT_MARKS)
    if noisy(ink.parts, keep):
        raise ImageError(NOISE)
    if len(keep) > 4 * MAX_DIGITS:  # the candidates stay few: never more than this many pieces
        raise ImageError(too_many(len(keep)))
    line = line_of(ink.parts, keep)
    keep = _near(ink.parts, keep, line)  # without punctuation and marks far from the digits
    # separate columns of large pieces: at least that many digits
    if (n := columns(ink.parts, keep, SMALL * line.height)) > MAX_DIGITS:
        raise ImageError(too_many(n))
    x, _ = stretch(ink, keep)  # (H, W): background 0, ink 1
    out, cropped = [], {}  # cropped: each run's candidate, by what `crop` reads of it
    for k, cutting in enumerate(cuttings):
        found = atoms(ink.parts, keep, line, cutting)
        if len(found) > (cutting.run + 1) * MAX_DIGITS:  # a long row of touching marks: text
            if k == 0:
                raise ImageError(too_many(len(found)))
            continue
        spans = runs(found, line, cutting.run)  # at most cutting.run per atom: bounded work
        cands = []
        for i, j in spans:
            key = _run_key(found, i, j)
            if key not in cropped:
                cropped[key] = crop(ink.parts, x, found, i, j, line)
            cands.append(cropped[key])
        out.append((found, spans, cands))
    return out


def _run_key(found: list[Atom], i: int, j: int) -> tuple:
    """All that `crop` reads of the run found[i:j]: its atoms' pieces, places and cuts, and
    the columns of the atoms beside it; equal for a run that two cuttings cut alike."""
    run = tuple(
        (a.pieces, a.left, a.right, a.top, a.cut_in, a.cut_out, a.bounds.tobytes())
        for a in found[i:j]
    )
    before = (found[i - 1].left, found[i - 1].right) if i > 0 else None
    after = (found[j].left, found[j].right) if j < len(found) else None
    return run, before, after


def too_many(n: int) -> str:
    """The sentence for a picture with n marks, more than a number's MAX_DIGITS digits."""
    return (
        f"The image has no number in it: it has {n} separate marks, more than the "
        f"{MAX_DIGITS} digits a number may have."
    )


def _near(parts: Components, keep: np.ndarray, line: Line) -> np.ndarray:
    """Drop small marks (a full stop, a dash) farther than 0.15 digit heights from any larger
    piece: punctuation; a small mark close to a digit may be a part of it."""
    size = np.maximum(parts.height[keep], parts.width[keep])
    large = keep[size >= SMALL * line.height]
    out = [
        i for i, s in zip(keep.tolist(), size)
        if s >= SMALL * line.height
        or min((_distance(_box(parts, [i]), _box(parts, [j])) for j in large), default=0)
        < 0.15 * line.height
    ]  # fmt: skip
    return np.array(out, dtype=int)


def _box(parts: Components, g: list[int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a group of pieces."""
    return parts.left[g].min(), parts.top[g].min(), parts.right[g].max(), parts.bottom[g].max()


def _distance(a: tuple, b: tuple) -> float:
    """The gap between two boxes (left, top, right, bottom), 0 where they overlap."""
    dx = max(a[0] - b[2], b[0] - a[2], 0)
    dy = max(a[1] - b[3], b[1] - a[3], 0)
    return float(np.hypot(dx, dy))


def line_of(parts: Components, keep: np.ndarray) -> Line:
    """The median height and centre of the digits' ink: of the kept pieces taken with those
    standing above or below them (a 5's flag and body, a broken stroke's halves), those at
    least half as tall as the tallest."""
    stacks = _stacks(parts, keep)
    top = np.array([parts.top[g].min() for g in stacks])
    bottom = np.array([parts.bottom[g].max() for g in stacks])
    tall = bottom - top >= 0.5 * (bottom - top).max()
    return Line(float(np.median((bottom - top)[tall])), float(np.median((top + bottom)[tall] / 2)))


def atoms(parts: Components, keep: np.ndarray, line: Line, cutting: Cutting = COARSE) -> list[Atom]:
    """The kept pieces, those standing above one another together, wide ones cut along the
    ink's thinnest paths; sorted by their centres left to right."""
    out = []
    for g in _stacks(parts, keep):
        left, right = int(parts.left[g].min()), int(parts.right[g].max())
        top, bottom = int(parts.top[g].min()), int(parts.bottom[g].max())
        ink = np.isin(parts.labels[top:bottom, left:right], np.asarray(g) + 1)  # (h, w)
        paths, crossed = _cuts(ink, line.height, cutting)  # (k, h) columns in the box, (k,) pixels
        edges = [np.zeros(len(ink), int), *paths, np.full(len(ink), right - left)]
        costs = [0, *crossed, 0]
        cols = np.arange(right - left)[None]  # (1, w)
        parts_of = [
            ink & (cols >= a[:, None]) & (cols < np.maximum(b, a)[:, None])  # (h, w)
            for a, b in zip(edges, edges[1:])
        ]
        # a sliver beside a cut (a cut that leans out at a piece's end) is no part of its own:
        # the cut goes, and the sliver stays with its neighbour
        least = _SLIVER * line.height**2
        while len(parts_of) > 1 and min(sizes := [m.sum() for m in parts_of]) < least:
            k = int(np.argmin(sizes))
            cut = k if k == len(parts_of) - 1 or (k > 0 and costs[k] <= costs[k + 1]) else k + 1
            parts_of[cut - 1] = parts_of[cut - 1] | parts_of.pop(cut)
            del edges[cut], costs[cut]
        for k, mine in enumerate(parts_of):
            used = np.flatnonzero(mine.any(axis=0))
            if len(used) == 0:
                continue  # two cuts met: nothing between them
            start, end = edges[k], np.maximum(edges[k + 1], edges[k])  # (h,) each
            bounds = np.stack([start, end], axis=1) + left  # (h, 2)
            out.append(Atom(tuple(g), left + int(used[0]), left + int(used[-1]) + 1, top, bounds,
                            costs[k], costs[k + 1]))  # fmt: skip
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


def _cuts(ink: np.ndarray, height: float, cutting: Cutting) -> tuple[list[np.ndarray], list[int]]:
    """Where the ink (h, w) may be touching digits: paths from top to bottom crossing the
    least ink, each a column per row, and the ink pixels each crosses; left to right.

    Each column c is given the cheapest path that stays within a band around a line through
    c (upright, or leaning as slanted writing does), one column of drift per row at most;
    the cuts are the columns whose path crosses less ink than those of the columns beside
    them, apart from each other and from the ends. Overlapping digits, which no straight
    line parts, are parted along the gap that winds between them.
    """
    h, w = ink.shape
    if w < _CUT_FROM * height:
        return [], []
    f = -(-h // _CUT_ROWS)  # the paths are found on a copy at most _CUT_ROWS rows tall
    small = _shrink(ink, f)  # (h', w') share of ink in each f x f block
    height /= f
    margin, apart = max(2, int(_CUT_MARGIN * height)), max(2, int(cutting.apart * height))
    half = max(1, min(apart // 2 - 1, int(_CUT_BAND * height)))
    cost, paths = _paths(small, half)  # (w',), (w', h')
    most = int(small.shape[1] / (cutting.every * height))
    chosen: list[int] = []
    for c in np.argsort(cost[margin:-margin], kind="stable") + margin:
        if cost[c] > cost[max(0, c - 2) : c + 3].min():
            continue  # not a local minimum: a cut beside it crosses less ink
        if all(abs(c - d) >= apart for d in chosen):
            chosen.append(int(c))
            if len(chosen) >= most:
                break
    # where two digits touch, the outline dips between their tops (or rises between their
    # bottoms) even when the ink there is thick: a cut through the dip as well
    for c in _dips(small > 0, height, margin):
        if all(abs(c - d) >= apart for d in chosen) and len(chosen) < 2 * most:
            chosen.append(c)
    out = [_full_size(ink, paths[c], f) for c in sorted(chosen)]  # (h,) each
    for k in range(1, len(out)):  # cuts never cross: a later one never left of an earlier one
        out[k] = np.maximum(out[k], out[k - 1])
    crossed = [int(ink[np.arange(h), np.minimum(p, w - 1)].sum()) for p in out]
    return out, crossed


def _dips(ink: np.ndarray, height: float, margin: int) -> list[int]:
    """Columns of ink (h, w) where its upper outline dips, or its lower outline rises, by
    _DIP digit heights below (above) the highest (lowest) ink within _DIP_SPAN on each side;
    deepest first."""
    h, w = ink.shape
    has = ink.any(axis=0)  # (w,)
    upper = np.where(has, ink.argmax(axis=0), h)  # (w,) the first row with ink
    lower = np.where(has, h - 1 - ink[::-1].argmax(axis=0), -1)  # (w,) the last
    span, least = max(2, int(_DIP_SPAN * height)), _DIP * height
    found = []
    for c in range(margin, w - margin):
        if not has[c]:
            continue
        for depth in (
            upper[c] - max(upper[max(0, c - span) : c].min(), upper[c + 1 : c + 1 + span].min()),
            min(lower[max(0, c - span) : c].max(), lower[c + 1 : c + 1 + span].max()) - lower[c],
        ):
            if depth >= least:
                found.append((-depth, c))
    return [c for _, c in sorted(found)]


def _shrink(ink: np.ndarray, f: int) -> np.ndarray:
    """The share of ink in each f x f block of ink (h, w): (ceil(h / f), ceil(w / f))."""
    if f == 1:
        return ink.astype(float)
    h, w = ink.shape
    padded = np.zeros((-(-h // f) * f, -(-w // f) * f))
    padded[:h, :w] = ink
    return padded.reshape(len(padded) // f, f, -1, f).mean(axis=(1, 3))


def _full_size(ink: np.ndarray, path: np.ndarray, f: int) -> np.ndarray:
    """A path found on the shrunk copy, back at full size (h,): in each row, the column of its
    block with the least ink (the block's first where there is none)."""
    h, w = ink.shape
    rows = np.arange(h)
    start = path[rows // f] * f  # (h,) each row's block
    cols = np.minimum(start[:, None] + np.arange(f)[None], w - 1)  # (h, f)
    return np.minimum(start + ink[rows[:, None], cols].argmin(axis=1), w)


def _paths(ink: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """For each column c of ink (h, w), the path through c's bands that crosses the least ink:
    its cost (ink pixels crossed, plus a little per sideways step) and its columns (w, h)."""
    h, w = ink.shape
    best_cost, best_path = np.full(w, np.inf), np.zeros((w, h), int)
    offsets = np.arange(-half, half + 1)  # (O,) places in the band
    rows = np.arange(h)
    for slant in _CUT_SLANTS:
        lean = np.round(slant * (h / 2 - rows)).astype(int)  # (h,) the band's shift per row
        centre = np.arange(w)[:, None] + lean[None]  # (w, h)
        cols = centre[:, :, None] + offsets[None, None]  # (w, h, O)
        inside = (cols >= 0) & (cols < w)
        pay = np.where(inside, ink[rows[None, :, None], np.clip(cols, 0, w - 1)], 1.0)  # (w, h, O)
        total = pay[:, 0].astype(float)  # (w, O): cheapest way to each place of row 0
        step = np.zeros((w, h, len(offsets)), np.int8)  # the move into each place: -1, 0, +1
        side = np.full((w, len(offsets) + 2), np.inf)  # (w, O + 2) a sideways step's cost
        from_left, from_right = side[:, :-2], side[:, 2:]  # (w, O) views: place k -/+ 1
        for r in range(1, h):
            # the band moves with the slant; within it, a path moves at most one place a row;
            # of equal moves, the one from the left first, then staying (argmin's order)
            side[:, 1:-1] = total + _SIDEWAYS
            best, pick = total.copy(), np.zeros(total.shape, np.int8)  # (w, O) each
            left = from_left <= best
            best[left], pick[left] = from_left[left], -1
            right = from_right < best
            best[right], pick[right] = from_right[right], 1
            total = best + pay[:, r]
            step[:, r] = pick
        end = total.argmin(axis=1)  # (w,)
        cost = total[np.arange(w), end]
        better = cost < best_cost
        if not better.any():
            continue
        place = np.zeros((w, h), int)
        place[:, -1] = end
        for r in range(h - 1, 0, -1):  # walk back up: where each row's place came from
            place[:, r - 1] = place[:, r] + step[np.arange(w), r, place[:, r]]
        path = np.clip(np.take_along_axis(cols, place[:, :, None], 2)[:, :, 0], 0, w)  # (w, h)
        best_cost = np.where(better, cost, best_cost)
        best_path[better] = path[better]
    return best_cost, best_path


def runs(atoms: list[Atom], line: Line, most: int = COARSE.run) -> list[tuple[int, int]]:
    """(i, j) for each run atoms[i:j] that may be one digit: 1 to `most` neighbours, no
    wider than _WIDEST digit heights (a single atom always, so every reading exists)."""
    out = []
    for i in range(len(atoms)):
        left, right = atoms[i].left, atoms[i].right
        for j in range(i + 1, min(i + most, len(atoms)) + 1):
            left, right = min(left, atoms[j - 1].left), max(right, atoms[j - 1].right)
            if j > i + 1 and right - left > _WIDEST * line.height:
                break
            out.append((i, j))
    return out


def spaced(found: list[Atom], spans: list[tuple[int, int]]) -> np.ndarray:
    """(C,) bool: for each run found[i:j], whether an empty column parts two of its atoms
    (digits apart, never two that overlap or touch)."""
    out = np.zeros(len(spans), bool)
    for c, (i, j) in enumerate(spans):
        right = found[i].right
        for a in found[i + 1 : j]:
            out[c] |= a.left > right
            right = max(right, a.right)
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
    mask = np.zeros(labels.shape, bool)
    for a in run:
        mask |= np.isin(labels, np.asarray(a.pieces) + 1) & a.owns(top, bottom, left, right)
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
            run[0].cut_in / h,
            run[-1].cut_out / h,
            _overlap(found[i - 1], left, right) / h if i > 0 else 0.0,
            _overlap(found[j], left, right) / h if j < len(found) else 0.0,
        ],
        np.float32,
    )
    box = (left, top, right, bottom)
    return Candidate(prep, np.clip(features, -4, 4), box, mask, to_pair(soft, mask))


def _overlap(a: Atom, left: int, right: int) -> int:
    """Columns of [left, right) that atom a also spans; less than 0: the empty columns between."""
    return min(a.right, right) - max(a.left, left)
