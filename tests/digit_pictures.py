"""Render realistic test pictures of printed digits: paper, phone photos, dark screens, canvases.

Each picture is a digit from a TrueType font at a random size, position and small rotation,
sometimes thickened, then put on one of several backgrounds and encoded as PNG or JPEG bytes,
so that `mlp_core.vision.digits` is tested on files like the ones users upload.
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "LiberationSans-Regular.ttf",
    "LiberationSans-Bold.ttf",
    "LiberationSans-Italic.ttf",
    "LiberationSerif-Regular.ttf",
    "LiberationSerif-Bold.ttf",
    "LiberationMono-Regular.ttf",
    "LiberationSansNarrow-Regular.ttf",
    "LiberationSansNarrow-Bold.ttf",
)
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
MIN_FONTS = 3

# Each style: (description, encodings it is saved in).
STYLES = {
    "paper": ("dark ink on white paper", ("PNG", "JPEG")),
    "photo": ("phone photo: grey ink on uneven, noisy off-white paper", ("JPEG",)),
    "dark": ("light ink on a dark screen", ("PNG", "JPEG")),
    "clear-white": ("white ink on a transparent background (a canvas)", ("PNG",)),
    "clear-black": ("black ink on a transparent background", ("PNG",)),
}


def find_fonts() -> list[Path]:
    """The fonts of FONT_FILES present on this machine; fails loudly with fewer than 3."""
    found: dict[str, Path] = {}
    for folder in FONT_DIRS:
        root = Path(folder).expanduser()
        if root.is_dir():
            for path in sorted(root.rglob("*.ttf")):
                found.setdefault(path.name, path)
    fonts = [found[name] for name in FONT_FILES if name in found]
    if len(fonts) < MIN_FONTS:
        raise RuntimeError(
            f"Only {len(fonts)} of the test fonts were found in {FONT_DIRS}; install "
            "fonts-dejavu-core and fonts-liberation (apt) to render the test pictures."
        )
    return fonts


def glyph_mask(digit: int, font: ImageFont.FreeTypeFont, stroke: int, angle: float) -> np.ndarray:
    """Ink coverage in [0, 1] of one rotated digit, cropped to its ink."""
    left, top, right, bottom = font.getbbox(str(digit), stroke_width=stroke)
    pad = 4
    mask = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    at = (pad - left, pad - top)
    ImageDraw.Draw(mask).text(at, str(digit), 255, font, stroke_width=stroke, stroke_fill=255)
    mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    return np.asarray(mask.crop(mask.getbbox()), dtype=np.float32) / 255  # (h, w)


def place(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put the glyph at a random spot of a larger canvas (the digit fills 25-85% of its height)."""
    h, w = mask.shape
    height = int(h / rng.uniform(0.25, 0.85))
    width = max(w + 4, int(height * rng.uniform(0.6, 1.6)))
    y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    cover = np.zeros((height, width), np.float32)  # (H, W)
    cover[y : y + h, x : x + w] = mask
    return cover


def paint(cover: np.ndarray, style: str, rng: np.random.Generator) -> Image.Image:
    """Turn ink coverage into a picture in the given style."""
    h, w = cover.shape
    m = cover[..., None]  # (H, W, 1)
    if style.startswith("clear"):
        ink = 255 if style == "clear-white" else 0
        rgb = np.where(m > 0, ink, 0) * np.ones(3)  # transparent pixels are black, as on a canvas
        return Image.fromarray(np.dstack([rgb, cover * 255]).round().astype(np.uint8))
    if style == "dark":
        paper, ink = np.full(3, rng.uniform(0, 50)), np.full(3, rng.uniform(190, 255))
    elif style == "paper":
        paper = np.full(3, rng.uniform(235, 255))
        ink = rng.choice([np.array([20.0, 20, 20]), np.array([30.0, 40, 120])])  # black or blue pen
    else:  # a phone photo: tinted, unevenly lit paper, greyish ink, sensor noise, a little blur
        paper = rng.uniform(160, 235) * np.array([1.0, 0.98, rng.uniform(0.88, 1.0)])
        ink = np.full(3, rng.uniform(30, 100))
    img = paper * (1 - m) + ink * m  # (H, W, 3)
    if style == "photo":
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        theta = rng.uniform(0, 2 * np.pi)
        light = 1 + rng.uniform(0.05, 0.2) * (np.cos(theta) * xx + np.sin(theta) * yy - 0.5)
        img = img * light[..., None] + rng.normal(0, rng.uniform(2, 7), img.shape)
    out = Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8))
    if style == "photo":
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return out


def encode(img: Image.Image, fmt: str, rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=int(rng.integers(60, 95)))
    else:
        img.save(buf, "PNG")
    return buf.getvalue()


def render_digit_pictures(seed: int = 0, n: int = 250) -> list[tuple[bytes, int, str]]:
    """n pictures as (file bytes, true digit, description); the same seed gives the same bytes."""
    rng = np.random.default_rng(seed)
    fonts = find_fonts()
    pictures = []
    for i in range(n):
        digit, path = i % 10, fonts[(i // 10) % len(fonts)]  # every font draws all ten digits
        size = int(rng.integers(24, 160))
        font = ImageFont.truetype(str(path), size)
        # Thicken regular weights like a felt pen or marker; bold faces are marker-thick already.
        thicken = 0.0 if "Bold" in path.stem else rng.choice([0, 0.015, 0.03])
        stroke = int(round(size * thicken))
        angle = float(rng.uniform(-10, 10))
        style = str(rng.choice(list(STYLES)))
        fmt = str(rng.choice(STYLES[style][1]))
        img = paint(place(glyph_mask(digit, font, stroke, angle), rng), style, rng)
        text = (
            f"{digit} in {path.stem} {size}px, stroke {stroke}, rotated {angle:+.0f} deg, "
            f"{STYLES[style][0]}, {img.width}x{img.height} {fmt}"
        )
        pictures.append((encode(img, fmt, rng), digit, text))
    return pictures


# --- the mess around a digit on real paper --------------------------------------------------

MESS = ("frame", "specks", "page edge", "shadow")


def frame(cover: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A thin box drawn around the ink, as on a form, with room on every side."""
    rows, cols = np.flatnonzero(cover.max(1) > 0.5), np.flatnonzero(cover.max(0) > 0.5)
    h, w = rows[-1] - rows[0], cols[-1] - cols[0]
    pad = int(0.35 * max(h, w))
    out = np.pad(cover, pad + 4)
    top, left = rows[0] + 4 + pad // 3, cols[0] + 4 + pad // 3
    bottom, right = rows[-1] + 4 + 2 * pad - pad // 3, cols[-1] + 4 + 2 * pad - pad // 3
    t = max(1, int(0.03 * max(h, w) * rng.uniform(0.7, 1.3)))  # line thickness
    for sl in (
        np.s_[top : top + t, left:right],
        np.s_[bottom - t : bottom, left:right],
        np.s_[top:bottom, left : left + t],
        np.s_[top:bottom, right - t : right],
    ):
        out[sl] = 1.0
    return out


def specks(cover: np.ndarray, rng: np.random.Generator, n: int = 25) -> np.ndarray:
    """Dust and dots of ink scattered over the picture, away from the digit."""
    out = cover.copy()
    h, w = out.shape
    ink = cover > 0.1
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    radius = max(1.0, 0.012 * (rows[-1] - rows[0]))
    yy, xx = np.mgrid[0:h, 0:w]
    placed = 0
    while placed < n:
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        r = radius * rng.uniform(0.6, 1.6)
        dot = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        if (dot & ink).any() or (
            rows[0] - 3 * r < y < rows[-1] + 3 * r and cols[0] - 3 * r < x < cols[-1] + 3 * r
        ):
            continue  # on or right beside the digit: that would change the digit itself
        out[dot] = 1.0
        placed += 1
    return out


def page_edge(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The paper photographed on a dark table: a slanted band of table along one side."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    h, w, _ = a.shape
    yy, xx = np.mgrid[0:h, 0:w]
    depth = rng.uniform(0.06, 0.12) * w  # how far the table reaches in
    table = xx < depth + rng.uniform(-0.05, 0.05) * (yy - h / 2)  # the left side, slanted
    dark = rng.uniform(20, 70) + rng.normal(0, 4, a.shape)
    a = np.where(table[..., None], dark, a)
    return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8))


def shadow(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A soft shadow (a hand, the phone) darkening one side of the picture by 35-50%."""
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    h, w, _ = a.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    theta = rng.uniform(0, 2 * np.pi)
    d = np.cos(theta) * (xx - 0.5 * w / max(h, w)) + np.sin(theta) * (yy - 0.5 * h / max(h, w))
    soft = 1 / (1 + np.exp(-(d - rng.uniform(-0.1, 0.1)) / 0.04))  # 0 lit .. 1 shaded
    a = a * (1 - rng.uniform(0.35, 0.5) * soft)[..., None]
    return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8))


EXTRA_LIGHT = "DejaVuSans-ExtraLight.ttf"  # the hairline face (not in FONT_FILES: too thin to read)


def hairline_mask(digit: int, size: int, angle: float) -> np.ndarray:
    """A digit written with a fine pen, large: DejaVu's ExtraLight face, eroded by a pixel."""
    path = next(p for d in FONT_DIRS for p in Path(d).expanduser().rglob(EXTRA_LIGHT))
    mask = glyph_mask(digit, ImageFont.truetype(str(path), size), 0, angle)
    img = Image.fromarray((mask * 255).astype(np.uint8)).filter(ImageFilter.MinFilter(3))
    return np.asarray(img, dtype=np.float32) / 255


def render_messy_digits(kind: str, seed: int = 0, n: int = 40) -> list[tuple[bytes, int, str]]:
    """n single digits on paper or in a phone photo with one kind of mess: a MESS kind, or
    "thick" (a marker 9% of the font size wide), "thin" (a hairline), "clean" (none)."""
    rng = np.random.default_rng(seed)
    fonts = find_fonts()
    pictures = []
    for i in range(n):
        digit, path = i % 10, fonts[i % len(fonts)]
        font = ImageFont.truetype(str(path), int(rng.integers(40, 120)))
        stroke = int(font.size * (0.09 if kind == "thick" else 0.015))
        angle = float(rng.uniform(-8, 8))
        if kind == "thin":
            mask = hairline_mask(digit, int(rng.integers(200, 320)), angle)
        else:
            mask = glyph_mask(digit, font, stroke, angle)
        cover = place(mask, rng)
        if kind == "frame":
            cover = frame(cover, rng)
        elif kind == "specks":
            cover = specks(cover, rng)
        style = str(rng.choice(["paper", "photo"]))
        img = paint(cover, style, rng)
        if kind == "page edge":
            img = page_edge(img, rng)
        elif kind == "shadow":
            img = shadow(img, rng)
        text = f"{digit} in {path.stem}, {kind}, {STYLES[style][0]}, {img.width}x{img.height}"
        pictures.append((encode(img, "PNG", rng), digit, text))
    return pictures
