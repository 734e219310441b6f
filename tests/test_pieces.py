"""ink: connected components against a plain flood fill; which pieces may be a digit's ink."""

from collections import deque

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mlp_core.vision.pieces import components, digit_pieces, ruled_lines


def flood_fill(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The textbook way: breadth-first search from each unlabelled ink pixel, 8 neighbours."""
    h, w = mask.shape
    labels, n = np.zeros((h, w), int), 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        n += 1
        labels[y0, x0] = n
        queue = deque([(y0, x0)])
        while queue:
            y, x = queue.popleft()
            for yy in range(max(0, y - 1), min(h, y + 2)):
                for xx in range(max(0, x - 1), min(w, x + 2)):
                    if mask[yy, xx] and not labels[yy, xx]:
                        labels[yy, xx] = n
                        queue.append((yy, xx))
    return labels, n


@pytest.mark.parametrize("seed", range(20))
def test_components_match_a_flood_fill(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
    mask = rng.random(shape) < rng.uniform(0.1, 0.7)
    parts = components(mask)
    expected, n = flood_fill(mask)
    assert len(parts) == n
    # the same partition: each of our labels is exactly one of theirs, and back
    pairs = set(zip(parts.labels[mask].tolist(), expected[mask].tolist()))
    assert len(pairs) == n == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    assert (parts.labels[~mask] == 0).all() and parts.area.sum() == mask.sum()
    for k in range(n):
        rows, cols = np.nonzero(parts.labels == k + 1)
        assert (parts.top[k], parts.bottom[k]) == (rows.min(), rows.max() + 1)
        assert (parts.left[k], parts.right[k]) == (cols.min(), cols.max() + 1)
        assert parts.area[k] == len(rows)


def kept(img: Image.Image) -> list[tuple[int, int, int, int]]:
    """The boxes (left, top, right, bottom) of the pieces digit_pieces keeps, left to right."""
    parts = components(np.asarray(img) > 127)
    keep = digit_pieces(parts, parts.labels.shape)
    boxes = [(parts.left[i], parts.top[i], parts.right[i], parts.bottom[i]) for i in keep]
    return sorted((int(a), int(b), int(c), int(d)) for a, b, c, d in boxes)


def canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (400, 300), 0)
    draw = ImageDraw.Draw(img)
    draw.line([(150, 80), (250, 80), (190, 220)], 255, 14)  # a 7, the digit to keep
    return img, draw


def test_a_lone_digit_is_kept():
    img, _ = canvas()
    assert len(kept(img)) == 1


def test_a_frame_specks_a_ruled_line_and_a_page_edge_are_dropped():
    img, draw = canvas()
    seven = kept(img)
    draw.rectangle((100, 50, 300, 250), outline=255, width=3)  # a frame around the 7
    for x, y in [(20, 20), (350, 60), (40, 200), (330, 280)]:
        draw.ellipse((x, y, x + 3, y + 3), 255)  # specks
    draw.line([(60, 275), (340, 275)], 255, 3)  # a ruled line below, apart from the frame
    draw.polygon([(0, 0), (25, 0), (15, 300), (0, 300)], 255)  # the table beside the page
    assert kept(img) == seven


def test_a_dotted_zero_loses_its_dot_and_a_frameless_digit_keeps_its_pieces():
    img = Image.new("L", (300, 300), 0)
    draw = ImageDraw.Draw(img)
    draw.ellipse((90, 40, 210, 260), outline=255, width=16)  # a 0
    draw.ellipse((140, 135, 160, 165), 255)  # its dot
    assert kept(img) == [(90, 40, 211, 261)]
    img = Image.new("L", (300, 300), 0)  # a 5 whose bar was drawn apart: two pieces, both kept
    draw = ImageDraw.Draw(img)
    draw.line([(110, 50), (200, 50)], 255, 14)
    draw.line([(110, 90), (105, 140), (190, 150), (190, 240), (100, 250)], 255, 14)
    assert len(kept(img)) == 2


def test_ruled_lines_are_found_without_the_strokes_that_cross_them():
    img = Image.new("L", (400, 300), 0)
    draw = ImageDraw.Draw(img)
    for y in (60, 120, 180, 240):
        draw.line([(0, y), (399, y)], 255, 3)  # lined paper
    draw.line([(150, 90), (150, 210)], 255, 10)  # a 1 crossing the lines at 120 and 180
    mask = np.asarray(img) > 127
    lines = ruled_lines(mask)
    # beside the 1, every line pixel is a ruled line's; where the 1 crosses, the 1 keeps them
    assert (lines[:, :140] == mask[:, :140]).all() and (lines[:, 160:] == mask[:, 160:]).all()
    assert not lines[90:211, 146:155].any()
    assert len(components(mask & ~lines)) == 1  # the 1, whole


def test_a_seven_in_a_tight_crop_is_not_a_ruled_line():
    img = Image.new("L", (60, 80), 0)
    draw = ImageDraw.Draw(img)
    draw.line([(0, 2), (59, 2), (25, 79)], 255, 4)  # its bar spans the picture
    assert not ruled_lines(np.asarray(img) > 127).any()
