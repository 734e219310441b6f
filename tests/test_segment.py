"""segment: a number's ink cut into atoms, along the ink and through the dips of its outline."""

import numpy as np
from PIL import Image, ImageDraw

from mlp_core.vision.pieces import components
from mlp_core.vision.segment import Atom, Line, atoms, spaced


def slanted_pair(touch: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two leaning strokes whose columns overlap (as a slanted "11" written close), joined by a
    short bar near the top: one piece. Also which stroke owns each pixel (0, 1; -1 none)."""
    img = Image.new("L", (160, 120), 0)
    owner = Image.new("L", (160, 120), 0)
    for k, x in enumerate((40, 70)):  # bottoms 30 px apart; each leans 30 px over 100 rows
        for draw, value in ((ImageDraw.Draw(img), 255), (ImageDraw.Draw(owner), k + 1)):
            draw.line([(x, 110), (x + 30, 10)], value, 9)
    if touch:
        ImageDraw.Draw(img).line([(58, 50), (90, 50)], 255, 5)  # the bar that joins them
    return np.asarray(img) > 127, np.asarray(owner).astype(int) - 1


def test_leaning_strokes_whose_columns_overlap_are_parted_along_the_gap_between_them():
    mask, owner = slanted_pair()
    parts = components(mask)
    assert len(parts) == 1  # one piece: the cut must go through it
    keep = np.arange(len(parts))
    found = atoms(parts, keep, Line(height=100.0, middle=60.0))
    box = (0, mask.shape[0], 0, mask.shape[1])
    # some two neighbouring runs of atoms hold each stroke nearly whole and nearly alone:
    # no upright line does that, as the strokes share columns 66 to 74
    shares = []
    for a in found:
        mine = mask & a.owns(*box)
        shares.append([(mine & (owner == k)).sum() for k in (0, 1)])
    shares = np.array(shares)  # (atoms, 2) pixels of each stroke per atom
    totals = [(owner == k).sum() for k in (0, 1)]
    split = [
        (shares[:i, 0].sum() / totals[0], shares[i:, 1].sum() / totals[1])
        for i in range(1, len(found))
    ]
    assert max(min(s) for s in split) > 0.95, shares


def test_an_atom_owns_a_pixel_once_and_every_pixel_is_owned():
    mask, _ = slanted_pair()
    parts = components(mask)
    found = atoms(parts, np.arange(len(parts)), Line(height=100.0, middle=60.0))
    count = sum((mask & a.owns(0, mask.shape[0], 0, mask.shape[1])).astype(int) for a in found)
    assert (count[mask] == 1).all()


def test_a_tall_piece_is_cut_on_a_small_copy(monkeypatch):
    from mlp_core.vision import segment

    seen = []
    paths = segment._paths
    monkeypatch.setattr(
        segment, "_paths", lambda ink, half: seen.append(ink.shape) or paths(ink, half)
    )
    img = Image.new("L", (1200, 420), 0)
    draw = ImageDraw.Draw(img)
    for x in range(40, 1100, 180):  # six rings side by side, touching: one piece
        draw.ellipse((x, 10, x + 190, 410), outline=255, width=30)
    mask = np.asarray(img) > 127
    parts = components(mask)
    assert len(parts) == 1
    found = atoms(parts, np.arange(1), Line(height=400.0, middle=210.0))
    assert seen and all(h <= segment._CUT_ROWS for h, _ in seen)  # the paths' work: 40 rows
    assert 6 <= len(found) <= 6 * 3  # cut between the rings, not into slivers


def test_a_run_is_spaced_where_an_empty_column_parts_its_atoms():
    def atom(left, right):
        return Atom((0,), left, right, 0, np.array([[left, right]]))

    # a 5's flag over its body (columns shared), a digit apart, one that touches it
    found = [atom(0, 10), atom(4, 12), atom(20, 30), atom(30, 38)]
    spans = [(0, 1), (0, 2), (1, 3), (2, 4), (0, 4)]
    assert spaced(found, spans).tolist() == [False, False, True, False, True]
