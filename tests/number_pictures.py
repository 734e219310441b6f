"""Render realistic test pictures of printed numbers, 2 to 6 digits, from digit_pictures' glyphs.

Each number's digits come from one TrueType font at one size, each slightly rotated, set in a
row with varied spacing: apart, close, or touching (overlapping by a few pixels); some digits
are broken by a thin gap across their strokes. The row is painted in one of digit_pictures'
styles (paper, phone photo, dark screen, transparent canvas) and encoded as PNG or JPEG bytes.
"""

import numpy as np
from PIL import ImageFont

from digit_pictures import STYLES, encode, find_fonts, glyph_mask, paint

SPACINGS = ("apart", "close", "touching")


def broken(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The glyph with a thin, nearly horizontal gap across it, as a pen that skipped."""
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    y0, slope = rng.uniform(0.3, 0.7) * h, rng.uniform(-0.3, 0.3)
    gap = max(2.0, 0.05 * h)
    return np.where(np.abs(yy - y0 - slope * (xx - w / 2)) < gap / 2, 0, mask)


def row(masks: list[np.ndarray], gaps: list[int], rng: np.random.Generator) -> np.ndarray:
    """Set glyph masks left to right on one baseline (with a little jitter) with margins."""
    h = max(m.shape[0] for m in masks)
    width = sum(m.shape[1] for m in masks) + sum(gaps)
    margin_y, margin_x = int(h * rng.uniform(0.15, 1.0)), int(h * rng.uniform(0.15, 0.8))
    cover = np.zeros((h + 2 * margin_y + 4, width + 2 * margin_x), np.float32)  # (H, W)
    x = margin_x
    for m, gap in zip(masks, [*gaps, 0], strict=True):
        mh, mw = m.shape
        y = margin_y + (h - mh) + int(rng.integers(0, 4))  # bottoms aligned, give or take
        cover[y : y + mh, x : x + mw] = np.maximum(cover[y : y + mh, x : x + mw], m)
        x += mw + gap
    return cover


def render_number_pictures(seed: int = 0, n: int = 120) -> list[tuple[bytes, str, str]]:
    """n pictures as (file bytes, true number, description); the same seed gives the same bytes."""
    rng = np.random.default_rng(seed)
    fonts = find_fonts()
    pictures = []
    for i in range(n):
        path = fonts[i % len(fonts)]
        number = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(2, 7))))
        size = int(rng.integers(28, 120))
        font = ImageFont.truetype(str(path), size)
        stroke = 0 if "Bold" in path.stem else int(round(size * rng.choice([0, 0.015, 0.03])))
        masks = [glyph_mask(int(d), font, stroke, float(rng.uniform(-6, 6))) for d in number]
        breaks = [j for j in range(len(masks)) if rng.random() < 0.12]
        for j in breaks:
            masks[j] = broken(masks[j], rng)
        spacing = SPACINGS[i % len(SPACINGS)]
        h = max(m.shape[0] for m in masks)
        if spacing == "apart":
            gaps = [int(h * rng.uniform(0.15, 0.6)) for _ in masks[1:]]
        elif spacing == "close":
            gaps = [int(h * rng.uniform(0.03, 0.15)) + 1 for _ in masks[1:]]
        else:  # one or two pairs overlap by a few pixels, the rest are close
            touch = set(rng.choice(len(masks) - 1, min(2, len(masks) - 1), replace=False))
            gaps = [
                -int(rng.integers(1, 3 + size // 40)) if j in touch else int(h * 0.08) + 1
                for j in range(len(masks) - 1)
            ]
        style = str(rng.choice(list(STYLES)))
        fmt = str(rng.choice(STYLES[style][1]))
        img = paint(row(masks, gaps, rng), style, rng)
        text = (
            f"{number} in {path.stem} {size}px, stroke {stroke}, {spacing}"
            f"{', broken digits ' + str(breaks) if breaks else ''}, {STYLES[style][0]}, "
            f"{img.width}x{img.height} {fmt}"
        )
        pictures.append((encode(img, fmt, rng), number, text))
    return pictures
