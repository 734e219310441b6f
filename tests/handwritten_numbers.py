"""Pictures of handwritten numbers, composed from MNIST's *test* digits (never its training split).

Each number of 2 to 6 digits takes its digits from the test split as people wrote them, faint
pixels included, each scaled, slanted and shifted a little on its own, the number as a whole
slanted too, spaced apart, close, touching or overlapping; then painted in one of
digit_pictures' styles (paper, a phone photo with tint, blur and noise, a dark board, a
transparent canvas) and encoded as PNG or JPEG. `targeted` adds one case per way readers fail:
a 5 whose flag does not touch its body, a wide 0, a slanted 8, touching 1s.
"""

import numpy as np
from PIL import Image

from digit_pictures import STYLES, encode, paint

SPACINGS = ("apart", "close", "touching", "overlapping")
_GAPS = {  # the gap between two digits' ink, in digit heights, for each spacing
    "apart": (0.15, 0.5),
    "close": (0.03, 0.12),
    "touching": (-0.04, 0.0),
    "overlapping": (-0.12, -0.04),
}


def shaped(digit: np.ndarray, height: int, slant: float, widen: float = 1.0) -> np.ndarray:
    """An MNIST digit (28, 28) uint8 as ink coverage cropped to its ink, `height` px tall,
    slanted (x moves by `slant` px per px up) and `widen` times as wide."""
    rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
    ink = Image.fromarray(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    scale = height / ink.height
    ink = ink.resize((max(1, round(ink.width * scale * widen)), height), Image.Resampling.BICUBIC)
    pad = int(abs(slant) * height) + 2
    wide = Image.new("L", (ink.width + 2 * pad, height), 0)
    wide.paste(ink, (pad, 0))
    # x_in = x_out + slant * (y - height): the top leans right for slant > 0
    sheared = wide.transform(
        wide.size, Image.Transform.AFFINE, (1, slant, -slant * height, 0, 1, 0),
        Image.Resampling.BICUBIC,
    )  # fmt: skip
    out = np.asarray(sheared, dtype=np.float32) / 255  # (h, w)
    cols = np.flatnonzero(out.max(0) > 0.05)
    return out[:, cols[0] : cols[-1] + 1]


def compose(
    glyphs: list[np.ndarray], gaps: list[int], rng: np.random.Generator, owners: list | None = None
) -> np.ndarray:
    """Glyphs left to right, `gaps` px between their ink (< 0: overlapping), on one wobbly
    baseline, with a margin; overlapping ink is the darker of the two, as pen on pen.
    `owners`: a list to which the (H, W) map of which glyph owns each pixel is appended (-1 for
    none; where two overlap, the darker), for telling how well a cut parts them."""
    h = max(g.shape[0] for g in glyphs)
    xs = np.cumsum([0] + [g.shape[1] + gap for g, gap in zip(glyphs, gaps)])
    width = int(max(x + g.shape[1] for x, g in zip(xs, glyphs)))
    my, mx = int(h * rng.uniform(0.2, 0.8)), int(h * rng.uniform(0.2, 0.6))
    cover = np.zeros((h + 2 * my + h // 8, width + 2 * mx), np.float32)  # (H, W)
    owner = np.full(cover.shape, -1)
    for k, (x, g) in enumerate(zip(xs, glyphs)):
        gh, gw = g.shape
        y = my + (h - gh) + int(rng.integers(0, h // 8 + 1))
        at = np.s_[y : y + gh, mx + x : mx + x + gw]
        owner[at] = np.where(g > cover[at], k, owner[at])
        cover[at] = np.maximum(cover[at], g)
    if owners is not None:
        owners.append(np.where(cover > 0, owner, -1))
    return cover


def picture(cover: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """Paint and encode a cover in a random style; also the style's words."""
    style = str(rng.choice(list(STYLES)))
    fmt = str(rng.choice(STYLES[style][1]))
    img = paint(cover, style, rng)
    return encode(img, fmt, rng), f"{STYLES[style][0]}, {img.width}x{img.height} {fmt}"


def render_handwritten_numbers(
    images: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    n: int = 300,
    used: list | None = None,
    owners: list | None = None,
) -> list[tuple[bytes, str, str]]:
    """n pictures as (file bytes, true number, description) from MNIST test `images` (N, 28,
    28) uint8 and their `labels`; spacings in turn; the same seed gives the same bytes.
    `used`: a list to which each number's indices into `images` are appended; `owners`: one to
    which each picture's ink coverage (H, W) and owner map (H, W) are appended (`compose`)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        picks = rng.integers(0, len(images), int(rng.integers(2, 7)))
        if used is not None:
            used.append(picks)
        number = "".join(str(int(labels[k])) for k in picks)
        height = int(rng.integers(28, 110))
        slant = rng.uniform(-0.2, 0.2)
        glyphs = [
            shaped(images[k], int(height * rng.uniform(0.85, 1.15)), slant + rng.uniform(-0.1, 0.1))
            for k in picks
        ]
        spacing = SPACINGS[i % len(SPACINGS)]
        lo, hi = _GAPS[spacing]
        gaps = [int(round(height * rng.uniform(lo, hi))) for _ in picks[1:]]
        mine: list = []
        cover = compose(glyphs, gaps, rng, mine)
        if owners is not None:
            owners.append((cover, mine[0]))
        data, words = picture(cover, rng)
        out.append((data, number, f"{number}, {height}px, slant {slant:+.2f}, {spacing}, {words}"))
    return out


def _of(images, labels, digit: int, rng: np.random.Generator) -> np.ndarray:
    return images[int(rng.choice(np.flatnonzero(labels == digit)))]


def _detached_flag(five: np.ndarray) -> np.ndarray:
    """A 5 whose top bar does not touch its body: 3 blank rows put in below the bar."""
    rows = np.flatnonzero(five.any(1))
    top = rows[0] + max(3, (rows[-1] - rows[0]) // 5)  # the bar: the first fifth of the rows
    return np.insert(five, [top] * 3, 0, axis=0)  # (31, 28)


def targeted(images, labels, seed: int = 0, n: int = 8) -> list[tuple[bytes, str, str]]:
    """n of each failure the issue names, as (bytes, number, description)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h = int(rng.integers(40, 90))

        def one(d: int, slant: float, widen: float = 1.0, flag: bool = False, h: int = h):
            digit = _of(images, labels, d, rng)
            return shaped(_detached_flag(digit) if flag else digit, h, slant, widen)

        cases = {  # what: (number, glyphs, gaps)
            "5 with a detached flag": ("135", [one(1, 0.1), one(3, 0.1), one(5, 0.1, flag=True)],
                                       [h // 4, h // 4]),
            "a wide 0": ("305", [one(3, 0.0), one(0, 0.0, 1.7), one(5, 0.0)], [h // 6, h // 6]),
            "a slanted 8": ("80", [one(8, 0.45), one(0, 0.45)], [h // 8]),
            "touching 1s": ("112", [one(1, 0.05), one(1, 0.05), one(2, 0.05)], [-2, h // 10]),
        }  # fmt: skip
        for what, (number, glyphs, gaps) in cases.items():
            data, words = picture(compose(glyphs, gaps, rng), rng)
            out.append((data, number, f"{number}, {what}, {words}"))
    return out
