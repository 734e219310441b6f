"""Turn any picture of a digit into the 28x28 input an MNIST network expects, as MNIST was made.

MNIST digits are light ink on a black background, scaled so the larger side of the ink is 20
pixels, then placed in a 28x28 frame so that their centre of mass sits at the centre. A user's
picture (a canvas drawing, a phone photo of paper, a screenshot) is none of that, so
`preprocess` rebuilds it step by step:

    decode (decode.py: first frame, EXIF orientation) -> grey in [0, 1] -> flatten transparency ->
    even out the lighting -> polarity (ink light, background dark) -> ruled lines across the
    picture erased (lined paper) -> the ink's connected pieces (pieces.py); a shadow along
    the border lifted -> without specks, page edges, lines and frames -> contrast (ink 1,
    background 0) -> crop to the ink -> stroke width towards MNIST's -> scale its larger side
    to 20 px -> move its centre of mass to pixel (14, 14)

A pen thicker than most of MNIST's is also kept as written (`Preprocessed.written`), and
`surer` reads both: which of the two the network reads better depends on the digit.

A picture whose ink looks like noise or a texture, not strokes, has no digit in it.

The steps are public (`find_ink`, `stretch`, `to_mnist`) so that `numbers.py` runs the same
ones on each digit of a number.
"""

import os
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..metrics import predict_probs
from .decode import ImageError, decode
from .pieces import (
    SMALL,
    Components,
    columns,
    components,
    digit_pieces,
    noisy,
    ruled_lines,
    stroke_width,
)

_MIN_CONTRAST = 0.1  # ink must differ from the background by 10% of full scale to count
_DIGIT_SIDE, _FRAME_SIDE = 20, 28  # MNIST: the digit's larger side is 20 px, in a 28 px frame
PAIR_BOX, PAIR_FRAME = (20, 52), (28, 56)  # two digits side by side: their box and frame
_STROKES = (0.08, 0.2)  # stroke widths, as a fraction of the digit's larger side, left as they are
# MNIST's thickest 1% of pens (0.29 for its training digits at 4x): a pen between this and
# _STROKES[1] is handwriting too, and is also read as written (`surer`)
_THICKEST = 0.3
_WRITTEN_BY = 0.1  # how much surer the network must be of a digit as written than thinned
_WORK_DIGIT = 100  # px: the size at which a stroke width is corrected
_BRIDGE = 4  # px at that size: gaps up to twice this between a digit's pieces are closed
MAX_PIECES = 12  # more separate marks than this are noise or a texture, not one digit
_MAX_RUNS = 100  # more stretches of ink than this per row, on average: noise, not strokes
_SHADE_SIDE = 128  # px: the size at which the background under a shadow is found
NO_DIGIT_MARKS = "The image has no digit in it: it shows no mark the size and shape of a digit."
NOISE = "The image has no digit in it: it looks like noise or a texture, not a digit."


@dataclass(frozen=True)
class Preprocessed:
    tensor: torch.Tensor  # (1, 28, 28) float32 in [0, 1], 0 = background, 1 = ink
    preview: Image.Image  # 28x28 mode "L" image of exactly what the network sees (tensor*255)
    # the same digit with its strokes as written (thinned only to MNIST's thickest), where the
    # pen is thicker than most of MNIST's and `tensor` has been thinned (None otherwise)
    written: "Preprocessed | None" = None
    # how many digit-sized marks stand side by side in the picture (`preprocess`): more than
    # one, and the picture is likely a number, read here as one digit (`numbers` reads it)
    side_by_side: int = 1

    @classmethod
    def of(cls, tensor: torch.Tensor) -> "Preprocessed":
        """A (1, 28, 28) tensor in [0, 1] with its preview."""
        preview = Image.fromarray((tensor[0] * 255).round().to(torch.uint8).numpy())  # mode "L"
        return cls(tensor, preview)


@dataclass(frozen=True)
class InkMap:
    """Where a picture's ink is, found but not yet stretched: the steps `preprocess` and
    `numbers` share. ("Ink" is the marks themselves; here are their grey levels, mask and
    pieces.)"""

    gray: np.ndarray  # (H, W) float32 in [0, 1], the ink lighter than the background
    mask: np.ndarray  # (H, W) bool: Otsu's ink class
    parts: Components  # the mask's 8-connected pieces


def preprocess(
    source: bytes | str | os.PathLike | Image.Image | np.ndarray,
) -> Preprocessed:
    """Turn file bytes, a path, a PIL image or a canvas array into an MNIST-style digit.

    Raises ImageError, with one sentence for the user, for anything that is not a readable,
    accepted picture with a digit in it.
    """
    ink = find_ink(source)
    keep = digit_pieces(ink.parts, ink.mask.shape)  # (k,) indices: no specks, edges, frames
    if len(keep) == 0:
        raise ImageError(NO_DIGIT_MARKS)
    if len(keep) > MAX_PIECES or noisy(ink.parts, keep):
        raise ImageError(NOISE)
    x, mask = stretch(ink, keep)  # (H, W) each: background 0 to ink 1, and the digit's ink
    prep = to_mnist(x, mask, bridge=len(keep) > 1)
    tallest = ink.parts.height[keep].max()  # the digit height: smaller marks are parts of one
    n = columns(ink.parts, keep, SMALL * tallest)
    written = replace(prep.written, side_by_side=n) if prep.written is not None else None
    return replace(prep, written=written, side_by_side=n)


def find_ink(source: bytes | str | os.PathLike | Image.Image | np.ndarray) -> InkMap:
    """Decode, flatten, even out the lighting, set the polarity, erase ruled lines, split the
    ink into pieces."""
    gray, alpha = decode(source)  # (H, W) each, in [0, 1]; alpha is None when opaque
    if alpha is not None:
        gray = _flatten(gray, alpha)
    gray = _even_out(gray)  # (H, W), a flat background even in an unevenly lit photo
    gray, mask = _polarity(gray)  # (H, W) each: ink light, and where the ink is
    runs = np.count_nonzero(mask[:, 1:] & ~mask[:, :-1]) + np.count_nonzero(mask[:, 0])
    if runs > _MAX_RUNS * mask.shape[0]:  # a row of digits crosses a few dozen strokes at most
        raise ImageError(NOISE)
    lines = ruled_lines(mask)  # (H, W): lined paper's lines, erased with their soft edge
    if lines.any():
        gray = np.where(grow(lines, 1) & ~(mask & ~lines), np.median(gray[~mask]), gray)
        mask = mask & ~lines
    ink = InkMap(gray, mask, components(mask))
    # a large piece along the border: a shadow, perhaps (or a table, or noise: left as is)
    if _shaded(ink.parts) and not noisy(ink.parts, digit_pieces(ink.parts, mask.shape)):
        lifted = np.clip(gray - _background(gray), 0, 1)  # (H, W)
        light = lifted >= _threshold(lifted)  # the ink is light already: no polarity to set
        if light.any():
            again = InkMap(lifted, light, components(light))
            if _shaded(again.parts) < _shaded(ink.parts) and not _blob(again.parts):
                return again
    return ink


def _blob(parts: Components) -> bool:
    """True when the largest piece is a solid patch, not strokes: thick as a third of its box.

    Where strokes are wider than `_background`'s filter (a bold digit filling the picture),
    the filter takes them for paper, and what is left of the digit is such a patch."""
    i = int(np.argmax(parts.area))
    side = max(parts.height[i], parts.width[i])
    return stroke_width(parts.labels == i + 1) > side / 3


def _shaded(parts: Components) -> int:
    """Pixels of the largest piece running along the border for a tenth of its perimeter and
    covering a tenth of the picture (0 if none): a shadow's dark side, or a table's."""
    h, w = parts.labels.shape
    large = (parts.border >= 0.2 * (h + w)) & (parts.area >= 0.1 * h * w)
    return int(parts.area[large].max(initial=0))


def _background(gray: np.ndarray) -> np.ndarray:
    """The background's level under each pixel of a light-ink picture, shadows included.

    A grey opening (minimum, then maximum filter) wider than any stroke removes the ink and
    keeps what is wide: the paper, lit or shaded. It runs on a copy of at most 128 px, which
    is then smoothed and brought back to full size.
    """
    h, w = gray.shape
    f = min(1.0, _SHADE_SIDE / max(h, w))
    t = torch.from_numpy(gray)[None, None]  # (1, 1, H, W)
    small = F.interpolate(t, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area")
    r = _SHADE_SIDE // 12  # 10 px of 128: wider than the strokes of a digit filling the picture
    opened = _dilate(_erode(F.pad(small, (r,) * 4, mode="replicate"), r), r)[..., r:-r, r:-r]
    smooth = F.avg_pool2d(opened, 5, stride=1, padding=2, count_include_pad=False)
    return F.interpolate(smooth, size=(h, w), mode="bilinear")[0, 0].numpy()  # (H, W)


def stretch(ink: InkMap, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Background 0, typical ink of the pieces `keep` 1, every other piece erased.

    Returns the stretched picture and the kept pieces' mask, both (H, W).
    """
    mask = ink.parts.mask(keep)  # (H, W) bool
    # Shading and noise in the background (an unevenly lit photo) stay below its 99th
    # percentile; a typical ink pixel, even grey pencil, becomes 1.
    lo, hi = np.percentile(ink.gray[~ink.mask], 99), np.median(ink.gray[mask])
    x = np.clip((ink.gray - lo) / (hi - lo), 0, 1)  # (H, W)
    if len(keep) < len(ink.parts):
        # erase dropped pieces with their antialiased fringe, which lies outside the ink class
        x = np.where(grow(ink.mask & ~mask, 2) & ~grow(mask, 2), 0, x)
    return x, mask


def to_mnist(x: np.ndarray, mask: np.ndarray, bridge: bool = False) -> Preprocessed:
    """Crop x (background 0, ink 1) to the ink of `mask`, even its strokes, fit 20 px, centre.

    `bridge`: the digit is in several pieces, so close the small gaps between them.
    """
    box = _bounds(mask)
    crop, stroke = x[box], _stroke(mask[box])
    prep = _framed(_even_strokes(crop, stroke, bridge))
    if stroke <= _STROKES[1]:
        return prep
    return replace(prep, written=_framed(_even_strokes(crop, stroke, bridge, _THICKEST)))


def _framed(crop: np.ndarray) -> Preprocessed:
    """A digit's crop (h, w) fitted to 20 px and centred in the 28x28 frame."""
    frame = _centre(_fit_box(crop))  # (28, 28)
    return Preprocessed.of(torch.from_numpy(frame).float().unsqueeze(0))  # (1, 28, 28)


def surer(model: torch.nn.Module, preps: list[Preprocessed]) -> list[Preprocessed]:
    """Each digit as the network reads it best: where the pen is thicker than most of MNIST's,
    the picture thinned and as written (`Preprocessed.written`) are both read, and the one as
    written is kept where the network is surer of it by more than _WRITTEN_BY. Neither always
    wins: a thick pen's 6 with its loop filled reads as written (thinned, it is an outline read
    0); a bold typeface's 1, with its foot, reads thinned (as written, it is read 2)."""
    thick = [k for k, p in enumerate(preps) if p.written is not None]
    if not thick:
        return preps
    thinned = predict_probs(model, torch.cat([preps[k].tensor for k in thick])).amax(1)  # (T,)
    written = predict_probs(model, torch.cat([preps[k].written.tensor for k in thick])).amax(1)
    out = list(preps)
    for k, a, b in zip(thick, thinned.tolist(), written.tolist(), strict=True):
        if b > a + _WRITTEN_BY:
            out[k] = preps[k].written
    return out


def to_pair(x: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """What the pair reader sees (pairs.py): x's ink of `mask` cropped, scaled to 20 px tall
    (at most 52 wide) and centred in a 28x56 frame, two MNIST digits side by side; its strokes
    as they are. (1, 28, 56) float32."""
    frame = _centre(_fit_box(x[_bounds(mask)], PAIR_BOX), PAIR_FRAME)  # (28, 56)
    return torch.from_numpy(frame).unsqueeze(0)


def grow(mask: np.ndarray, r: int) -> np.ndarray:
    """Dilate a boolean (H, W) mask by r pixels (a square neighbourhood)."""
    t = torch.from_numpy(mask).float()[None, None]  # (1, 1, H, W)
    return F.max_pool2d(t, 2 * r + 1, stride=1, padding=r)[0, 0].numpy() > 0


def _flatten(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto a background: the paper's own colour, or one contrasting with the ink."""
    opaque = alpha > 0.5  # (H, W)
    if not opaque.any():
        raise ImageError("The image has no digit in it: it is fully transparent.")
    if opaque.mean() > 0.5:
        # Mostly opaque: the paper is in the picture, so a transparent margin takes its colour.
        fill = float(np.median(gray[opaque]))
    else:
        # Ink alone on transparency (a canvas drawing): white ink needs black, black ink white.
        fill = 0.0 if gray[opaque].mean() > 0.5 else 1.0
    return gray * alpha + fill * (1 - alpha)


def _least_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x minimising |a x - b|, for a few thousand rows and 6 columns: the 6x6 normal
    equations (a.T a) x = a.T b. (np.linalg.lstsq holds Python's lock while OpenBLAS's
    threads fight for busy cores: 6x slower on a loaded machine, and the web server's own
    thread waited behind it.)"""
    ata, atb = a.T @ a, a.T @ b
    try:
        return np.linalg.solve(ata, atb)
    except np.linalg.LinAlgError:  # too few background pixels to pin 6 numbers down
        return np.linalg.lstsq(a, b, rcond=None)[0]


def _even_out(gray: np.ndarray) -> np.ndarray:
    """Remove uneven lighting: subtract a smooth surface fitted to the background alone."""
    h, w = gray.shape
    step = max(1, int(np.sqrt(h * w / 4096)))  # a few thousand pixels pin down 6 numbers
    y, x = [c.ravel() / max(h, w) for c in np.mgrid[0:h:step, 0:w:step]]  # (N,) each
    terms = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)  # (N, 6)
    sample = gray[::step, ::step].ravel()  # (N,)
    residual = sample - np.median(sample)  # start flat, at the level most pixels share
    for _ in range(4):
        # Fit only the pixels close to the current surface: the background, not the ink.
        spread = 1.4826 * np.median(np.abs(residual))  # robust standard deviation
        keep = np.abs(residual) < max(3 * spread, 0.02)  # (N,)
        coef = _least_squares(terms[keep], sample[keep])  # (6,)
        residual = sample - terms @ coef
    y, x = np.arange(h)[:, None] / max(h, w), np.arange(w)[None, :] / max(h, w)
    surface = coef[0] + coef[1] * x + coef[2] * y + coef[3] * x * x + coef[4] * x * y
    surface = surface + coef[5] * y * y  # (H, W)
    return np.clip(gray - surface + np.median(surface), 0, 1).astype(np.float32)


def _otsu_threshold(x: np.ndarray) -> float:
    """The grey level that best splits x into two classes (Otsu's method, 256 bins)."""
    hist, edges = np.histogram(x, bins=256, range=(0.0, 1.0))
    p = hist / hist.sum()
    w0 = np.cumsum(p)[:-1]  # weight of the dark class for a cut after each bin
    m0 = np.cumsum(p * (edges[:-1] + edges[1:]) / 2)  # its mass-weighted mean, unnormalised
    mean = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean * w0 - m0[:-1]) ** 2 / (w0 * (1 - w0))  # between-class variance
    return float(edges[np.argmax(np.nan_to_num(between)) + 1])


def _threshold(gray: np.ndarray) -> float:
    """The grey level between ink and background: Otsu's, unless that only splits the paper.

    Otsu's method assumes two classes of similar weight. A hairline on a large noisy photo is
    a tiny class: Otsu then cuts the paper's own noise in half, into two classes that overlap
    (their means less than 4 standard deviations apart). Then the ink is instead what stands
    out from the median by more than 4 robust standard deviations, on whichever side more
    pixels do.
    """
    t = _otsu_threshold(gray)
    step = max(1, int(np.sqrt(gray.size / 250_000)))  # a quarter million pixels pin a median
    sample = gray[::step, ::step]
    below, above = sample[sample < t], sample[sample >= t]
    if below.size == 0 or above.size == 0:
        return t
    within = np.sqrt((below.var() * below.size + above.var() * above.size) / sample.size)
    if above.mean() - below.mean() >= 4 * within:
        return t  # two classes well apart: ink and paper (or lit and shaded paper)
    mid = float(np.median(sample))
    spread = 1.4826 * float(np.median(np.abs(sample - mid)))  # robust standard deviation
    dark, light = (gray < mid - 4 * spread).sum(), (gray > mid + 4 * spread).sum()
    if dark == light == 0:  # nothing stands out: no ink at all
        return t
    # the threshold is the class boundary: >= it is the light class, as with Otsu's
    return mid - 4 * spread + 1e-6 if dark > light else mid + 4 * spread + 1e-6


def _polarity(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Make the ink light on a dark background; also return the ink mask (Otsu's ink class)."""
    light = gray >= _threshold(gray)  # (H, W)
    # The background is what the picture's edge mostly shows (even when a bold digit covers
    # most of a tight crop): a light edge means dark ink on paper, so invert to light-on-dark.
    edge = np.concatenate([light[0], light[-1], light[:, 0], light[:, -1]])
    if edge.mean() > 0.5:
        gray, light = 1 - gray, ~light
    ink, background = gray[light], gray[~light]
    if ink.size == 0 or np.median(ink) - np.median(background) < _MIN_CONTRAST:
        raise ImageError("The image has no digit in it: it is blank or has too little contrast.")
    return gray, light  # (H, W) each


def _stroke(mask: np.ndarray) -> float:
    """The ink's stroke width as a fraction of its larger side (no wider than the crop: a
    1-pixel dash has almost no outline, so the estimate alone would be its length)."""
    return min(stroke_width(mask), min(mask.shape)) / max(mask.shape)


def _even_strokes(
    crop: np.ndarray, rel: float, bridge: bool = False, most: float = _STROKES[1]
) -> np.ndarray:
    """Thin a marker-thick digit or thicken a hairline towards MNIST's stroke width, its
    stroke `rel` of its size (`_stroke`); with `bridge`, also close small gaps between its
    pieces (a broken stroke).

    MNIST's strokes are 2-4 px wide in a 20 px box (median 2.6). Outside `_STROKES` (above
    `most`, where given) the crop is brought to `_WORK_DIGIT` px and eroded (a grey minimum
    filter) or dilated (maximum filter) by the difference; a gap is closed by dilating then
    eroding. Otherwise the crop is returned unchanged.
    """
    side = max(crop.shape)
    lo = _STROKES[0]
    target = lo if rel < lo else most if rel > most else rel
    r = round((rel - target) * _WORK_DIGIT / 2)  # pixels to take off (or add on) each side
    if r == 0 and not bridge:
        return crop
    t = torch.from_numpy(np.ascontiguousarray(crop, np.float32))[None, None]  # (1, 1, h, w)
    f = _WORK_DIGIT / side
    size = (max(1, round(crop.shape[0] * f)), max(1, round(crop.shape[1] * f)))
    # A hairline would fade in an averaging resize: shrink it by taking maxima instead.
    if r < 0 and f < 1:
        t = F.adaptive_max_pool2d(t, size)
    else:
        t = F.interpolate(t, size=size, mode="area" if f < 1 else "bilinear")
    pad = max(abs(r), _BRIDGE if bridge else 0)
    t = F.pad(t, (pad,) * 4)  # room for a thickened stroke; an eroded one only shrinks
    if bridge:
        t = _erode(_dilate(t, _BRIDGE), _BRIDGE)
    t = _dilate(t, -r) if r < 0 else _erode(t, r)
    out = t[0, 0].numpy()  # (h'', w'')
    ink = out > 0.5 * out.max(initial=0)
    if not ink.any():  # eroded away: a blob, not strokes; keep what there was
        return crop
    return out[_bounds(ink)]


def _dilate(t: torch.Tensor, r: int) -> torch.Tensor:
    """Grey dilation of a (1, 1, h, w) picture: each pixel the maximum of its square of radius r."""
    if r <= 0:
        return t
    # a square's maximum is the maximum along its rows, then its columns: 2k, not k*k, reads
    t = F.max_pool2d(t, (1, 2 * r + 1), stride=1, padding=(0, r))
    return F.max_pool2d(t, (2 * r + 1, 1), stride=1, padding=(r, 0))


def _erode(t: torch.Tensor, r: int) -> torch.Tensor:
    """Grey erosion: each pixel the minimum of its square of radius r."""
    return -_dilate(-t, r)


def _fit_box(crop: np.ndarray, box: tuple[int, int] = (_DIGIT_SIDE, _DIGIT_SIDE)) -> np.ndarray:
    """Scale a crop of the ink, keeping its aspect ratio, as large as fits `box` (rows,
    columns): for a digit, so its larger side is 20 px."""
    h, w = crop.shape
    scale = min(box[0] / h, box[1] / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # Lanczos on a float image antialiases like MNIST's scaling; its slight ringing is clipped.
    small = Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(small), 0, 1)  # (h', w') within box


def recentre(picture: np.ndarray) -> np.ndarray:
    """A picture's ink (H, W) moved so that its centre of mass is the frame's centre, as
    MNIST's digits are; a picture without ink is returned as it is."""
    if not picture.any():
        return picture.astype(np.float32)
    return _centre(picture[_bounds(picture != 0)], picture.shape)


def _bounds(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of the smallest box holding all of a mask's ink (some True)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _centre(digit: np.ndarray, frame: tuple[int, int] = (_FRAME_SIDE, _FRAME_SIDE)) -> np.ndarray:
    """Place the digit in a frame (28x28, as MNIST did) with its centre of mass at the
    frame's centre."""
    h, w = digit.shape
    total = digit.sum()
    cy = (digit.sum(axis=1) @ np.arange(h)) / total  # centre of mass, in pixel indices
    cx = (digit.sum(axis=0) @ np.arange(w)) / total
    # Round the shift like MNIST, but never push ink out of the frame.
    top = min(max(round(frame[0] / 2 - cy), 0), frame[0] - h)
    left = min(max(round(frame[1] / 2 - cx), 0), frame[1] - w)
    out = np.zeros(frame, np.float32)  # (28, 28)
    out[top : top + h, left : left + w] = digit
    return out
