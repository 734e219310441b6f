"""The ink's pieces (connected components): which pixels touch, how large each is, where.

A picture's ink mask is split into components (8-connected: diagonal neighbours touch), the
way a reader sees separate marks. The labelling works on runs, not pixels, so that it stays
fast in plain numpy: each row's ink is a few runs, a run touches the runs of the next row
whose columns overlap it (or meet it diagonally), and joining touching runs with a
union-find gives the components. Everything is vectorised: a 2048x2048 mask of noise, about
two million runs, is labelled in a fraction of a second.
"""

from dataclasses import dataclass

import numpy as np

_MANY = 100  # more pieces than this after dropping specks: noise, not digits
_RIVALS = 12  # more than twice this many digit-sized pieces: noise or a texture
SMALL = 0.4  # a piece smaller than this many digit heights is part of a digit, or punctuation


@dataclass(frozen=True)
class Components:
    """The components of an (H, W) mask; per-component arrays have one entry per component."""

    labels: np.ndarray  # (H, W) int32: 0 = no ink, k = component k - 1
    area: np.ndarray  # (n,) ink pixels
    top: np.ndarray  # (n,) bounding box rows [top, bottom) and columns [left, right)
    bottom: np.ndarray
    left: np.ndarray
    right: np.ndarray
    border: np.ndarray  # (n,) pixels lying on the picture's outermost rows and columns

    def __len__(self) -> int:
        return len(self.area)

    @property
    def height(self) -> np.ndarray:
        return self.bottom - self.top

    @property
    def width(self) -> np.ndarray:
        return self.right - self.left

    def mask(self, keep) -> np.ndarray:
        """(H, W) bool: the pixels of the components whose indices are in `keep`."""
        chosen = np.zeros(len(self) + 1, bool)
        chosen[np.asarray(keep, int) + 1] = True
        return chosen[self.labels]


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of True as (row, start, end) arrays, end exclusive, in row-major order."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)  # (H, W + 1): +1 where a run starts, -1 after it ends
    rows, starts = np.nonzero(step == 1)
    _, ends = np.nonzero(step == -1)
    return rows, starts, ends


def _painted(shape: tuple[int, int], rows, starts, ends) -> np.ndarray:
    """The runs (row, start, end) of `_runs` painted back as a bool mask of `shape`."""
    h, w = shape
    marks = np.zeros(h * w + 1, np.int32)  # +1 at each run's start, -1 after its end
    np.add.at(marks, rows * w + starts, 1)
    np.add.at(marks, rows * w + ends, -1)
    return np.cumsum(marks[:-1]).reshape(h, w) > 0


def _roots(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union-find over n nodes joined by edges (a, b): each node's smallest connected node."""
    parent = np.arange(n)
    while True:
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            return parent
        # hook the larger root under the smaller, then halve every path until all are flat
        np.minimum.at(parent, np.maximum(pa, pb), np.minimum(pa, pb))
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


def components(mask: np.ndarray) -> Components:
    """Label the 8-connected components of a boolean (H, W) mask, in row-major order."""
    h, w = mask.shape
    rows, starts, ends = _runs(mask)  # (R,) each
    # A run of row r touches a run of row r + 1 when their columns overlap or meet at a corner:
    # the next row's runs with end >= start and start <= end form one slice of the sorted list.
    k = w + 2  # sort key of a column in a row: row * k + column
    first = np.searchsorted(rows * k + ends, (rows + 1) * k + starts, side="left")
    last = np.searchsorted(rows * k + starts, (rows + 1) * k + ends, side="right")
    count = np.maximum(last - first, 0)  # (R,) runs touched below each run
    a = np.repeat(np.arange(len(rows)), count)  # (E,) edges a -> b
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)  # 0, 1, .. per a
    b = np.repeat(first, count) + offset
    root = _roots(len(rows), a, b)
    roots, run_label = np.unique(root, return_inverse=True)  # (n,), (R,) numbered 0..n-1
    n = len(roots)
    # paint each run's label + 1 into the picture: +label at its start, -label after its end
    # (a run ending a row and one starting the next share a position, so add, don't assign)
    weight = run_label + 1.0
    delta = np.bincount(rows * w + starts, weight, h * w + 1)
    delta -= np.bincount(rows * w + ends, weight, h * w + 1)
    labels = np.cumsum(delta[:-1].astype(np.int32)).reshape(h, w)
    area = np.bincount(run_label, weights=ends - starts, minlength=n).astype(np.int64)
    top, left = np.full(n, h), np.full(n, w)
    bottom, right = np.zeros(n, int), np.zeros(n, int)
    np.minimum.at(top, run_label, rows)
    np.maximum.at(bottom, run_label, rows + 1)
    np.minimum.at(left, run_label, starts)
    np.maximum.at(right, run_label, ends)
    edge = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    border = np.bincount(edge, minlength=n + 1)[1:]
    return Components(labels, area, top, bottom, left, right, border)


def _gap(parts: Components, i: int, j: np.ndarray) -> np.ndarray:
    """Distance in pixels between the bounding box of piece i and those of pieces j (0: overlap)."""
    dy = np.maximum(0, np.maximum(parts.top[j] - parts.bottom[i], parts.top[i] - parts.bottom[j]))
    dx = np.maximum(0, np.maximum(parts.left[j] - parts.right[i], parts.left[i] - parts.right[j]))
    return np.hypot(dx, dy)


def columns(parts: Components, keep: np.ndarray, least: float) -> int:
    """How many separate columns the kept pieces at least `least` px in size (their box's
    larger side) stand in: pieces whose columns overlap (a 5's flag over its body) are one."""
    big = keep[np.maximum(parts.height[keep], parts.width[keep]) >= least]
    ends, count = -1, 0
    for i in big[np.argsort(parts.left[big])]:
        count += parts.left[i] >= ends  # a new column: it starts past every piece before it
        ends = max(ends, parts.right[i])
    return int(count)


def digit_pieces(parts: Components, shape: tuple[int, int]) -> np.ndarray:
    """Indices of the pieces that may be a digit's ink: not page edges, specks, frames or lines.

    - page edge (a table beside the paper, a shadow, a photo's dark corner): a piece that
      runs along the picture's border for a tenth of its perimeter;
    - speck (dust, a dot of noise): under 2% of the largest remaining piece's area, a small
      piece far from every larger one, or a small piece cut by the picture's edge;
    - frame (a box drawn or printed around the digit): thin lines (a fifth of their box or
      less) with another piece in their hole, with room on all four sides; in the hole of a
      thicker piece, a much smaller piece is dropped instead (the dot of a dotted zero);
    - line (a ruled line, an underline, a margin): six times longer than thick and half as
      long again as the tallest other piece.
    A piece alone is never dropped as a page edge or a line: a digit in a tight crop touches
    the border, and a "1" is a line.
    """
    h, w = shape
    n = len(parts)
    if n == 0 or min(h, w) < 8:  # a sliver of a picture: nothing to tell pieces apart by
        return np.arange(n)
    touches = parts.border > 0
    edge = parts.border >= 0.2 * (h + w)
    if edge.all():
        edge[:] = False
    ok = ~edge
    big = np.argmax(np.where(ok, parts.area, -1))
    size = np.maximum(parts.height, parts.width)  # (n,) larger side of each piece's box
    ok &= parts.area >= 0.02 * parts.area[big]
    if ok.sum() > _MANY:  # noise or a texture: the caller refuses it, no need to look closer
        return np.flatnonzero(ok)
    for i in np.flatnonzero(ok & (size < 0.3 * size[big])):
        larger = np.flatnonzero(ok & (parts.area > parts.area[i]))
        if len(larger) and _gap(parts, i, larger).min() > 0.3 * size[big]:
            ok[i] = False  # a stray mark, far from anything the size of a digit
    ok &= ~(touches & (size < 0.5 * size[big]))  # a mark cut by the edge, a shaded corner
    mh, mw = 0.1 * parts.height, 0.1 * parts.width  # (n,) room a hole leaves around a piece
    for i in np.flatnonzero(ok):
        inside = (  # (n,) pieces whose box lies in i's with that room on all four sides
            ok
            & (parts.top[i] + mh <= parts.top)
            & (parts.bottom + mh <= parts.bottom[i])
            & (parts.left[i] + mw <= parts.left)
            & (parts.right + mw <= parts.right[i])
        )
        for j in np.flatnonzero(inside):
            box = np.s_[parts.top[j] : parts.bottom[j], parts.left[j] : parts.right[j]]
            if (parts.labels[box] == i + 1).any():
                continue  # i's own ink crosses j's box: j is beside i's strokes, not in a hole
            if parts.area[i] < 0.2 * parts.height[i] * parts.width[i]:
                ok[i] = False  # a frame: thin lines around a digit in its hole
                break
            if size[j] < 0.3 * size[i]:
                ok[j] = False  # a dot in a zero's hole (MNIST's zeros have none), a speck
    long = np.maximum(parts.width, parts.height) >= 6 * np.minimum(parts.width, parts.height)
    if (ok & ~long).any():
        tall = parts.height[ok & ~long].max()  # the tallest piece that is not a line
        ok &= ~(long & (size > 1.5 * tall))
    return np.flatnonzero(ok)


def noisy(parts: Components, keep: np.ndarray) -> bool:
    """True when the ink looks like noise or a texture, not marks on a clean background.

    On paper, the pieces dropped beside a digit are specks much smaller than it, and what
    runs along the border is solid (a table, a shadow). In noise and textures, many dropped
    pieces come close to the kept ones in size, and what touches the border is a tangle of
    thin threads many times larger than what is kept.
    """
    h, w = parts.labels.shape
    size = np.maximum(parts.height, parts.width)  # (n,)
    dropped = np.setdiff1d(np.arange(len(parts)), keep)
    inner = dropped[parts.border[dropped] == 0]
    rivals = (size[inner] >= 0.1 * size[keep].max()).sum()  # dropped, yet not much smaller
    if len(keep) + rivals > 2 * _RIVALS:
        return True
    big = dropped[parts.area[dropped] > 3 * parts.area[keep].sum()]
    return any(stroke_width(parts.labels == i + 1) < 0.1 * min(h, w) for i in big)


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width of the ink in pixels: twice its area over its outline's length.

    A stroke of width w and length L covers w*L pixels and has about 2*L outline pixels.
    """
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    outline = mask.sum() - inner.sum()
    return 2 * float(mask.sum()) / max(int(outline), 1)


def ruled_lines(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of ruled lines across the picture (lined paper, a long
    underline), without the strokes that cross them; all False when there are none.

    A ruled line is a thin horizontal stretch of ink at least half as wide as the picture and
    three times as long as the tallest mark left without it (a 7's bar, even in a tight crop,
    is shorter than its stem is tall). A digit written on the line touches it and, joined to
    it, would be one piece as wide as the page; with the line erased it stands alone. Where a
    stroke goes on above and below a line, the line's pixels stay, as part of the stroke.
    """
    h, w = mask.shape
    none = np.zeros((h, w), bool)
    if min(h, w) < 8:
        return none
    # a slightly tilted line is steps of runs: join rows one pixel apart before measuring
    near = mask.copy()
    near[1:] |= mask[:-1]
    near[:-1] |= mask[1:]
    rows, starts, ends = _runs(near)
    long = ends - starts >= 0.5 * w
    if not long.any():
        return none
    lines = _painted((h, w), rows[long], starts[long], ends[long]) & mask  # (H, W)
    # a thick band (a table's edge, a shadow) is not a ruled line: thin ones only
    thin = max(3, h // 30)
    cols, tops, bottoms = _runs(lines.T)  # vertical runs of line pixels per column
    thick = bottoms - tops > thin
    # ink just above and just below the line, within two columns: a stroke crossing it
    wide = mask.copy()
    for s in (1, 2):
        wide[:, s:] |= mask[:, :-s]
        wide[:, :-s] |= mask[:, s:]
    above = wide[np.maximum(tops - 1, 0), cols] & (tops > 0)
    below = wide[np.minimum(bottoms, h - 1), cols] & (bottoms < h)
    drop = ~thick & ~(above & below)
    out = _painted((w, h), cols[drop], tops[drop], bottoms[drop]).T  # (H, W): found transposed
    if not out.any():
        return none
    rest = components(mask & ~out)
    if len(rest) == 0:
        return none
    big = rest.area >= 0.02 * rest.area.max()
    longest = max(e - s for s, e in zip(starts[long], ends[long]))
    if longest < 3 * rest.height[big].max():
        return none
    return out
