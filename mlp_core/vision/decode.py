"""Safe decoding: any accepted picture, from bytes, a path, a PIL image or an array, into
grey levels, and nothing else out of it.

Everything here is priced before it is decoded: the file's size before it is read, the
format from its content (not its name) before a decoder runs, the width and height from
the header before any pixel is decoded (decompression bombs are refused undecoded). Any
failure of a decoder fed untrusted bytes becomes one ImageError sentence.
"""

import base64
import binascii
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError
from ..files import read_regular_file

MAX_FILE_BYTES = 50 * 2**20  # a picture file read from disk (uploads are capped lower)
MAX_PIXELS = 25_000_000  # width*height limit, checked from the header before decoding
ACCEPTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # by content (PIL's img.format)
_ACCEPTED_TEXT = ", ".join(ACCEPTED_FORMATS[:-1]) + " or " + ACCEPTED_FORMATS[-1]

# How PNG, JPEG and GIF files begin: a file that begins so but does not open is a broken
# picture, not something else.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")

_WORK_SIDE = 2048  # larger pictures are box-averaged down first: the digit ends up 20 px anyway


class ImageError(UserError, ValueError):
    """A picture that cannot become a digit; str(e) is one sentence for the user."""


def decode(source) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode any accepted source into grey levels and alpha; nothing but ImageError escapes."""
    if isinstance(source, (str, os.PathLike)):
        # read it all (PIL would otherwise keep the file open for animated pictures), but
        # only a regular file of a picture's size: never /dev/zero, a FIFO or a folder
        source = read_regular_file(source, MAX_FILE_BYTES, ImageError, "picture")
    if isinstance(source, np.ndarray):
        img = _from_array(source)
    elif isinstance(source, Image.Image):
        img = source  # the caller decoded it already, so no format check
    elif isinstance(source, (bytes, bytearray, memoryview)):
        img = _open(bytes(source))
    else:
        raise TypeError(
            f"preprocess() takes bytes, a path, a PIL image or an array, not {source!r}"
        )
    _check_size(img.size)  # from the header: nothing has been decoded yet
    try:
        # Warnings (corrupt EXIF, palette transparency, ...) must not become errors where
        # warnings are errors, and decoders of untrusted bytes can raise almost anything.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()  # for an animated GIF, WEBP or PNG: the first frame only
            img = _upright(img)
            high_depth = img.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")
            has_alpha = img.has_transparency_data and not high_depth
            img = img.convert("F" if high_depth else "RGBA" if has_alpha else "RGB")
    except Exception:  # see above: any failure here means a bad file
        raise ImageError(
            "The image file is truncated or corrupt and could not be decoded."
        ) from None
    if max(img.size) > _WORK_SIDE:
        img = img.reduce(-(-max(img.size) // _WORK_SIDE))  # box-average by a ceil'd factor
    if high_depth:
        return _high_depth(np.asarray(img)), None
    rgba = np.asarray(img, dtype=np.float32) / 255  # (H, W, 3 or 4)
    gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)  # (H, W), ITU-R 601 luma
    return gray, (rgba[..., 3] if has_alpha else None)


_DATA_URL_PREFIXES = ("data:image/png;base64,", "data:image/jpeg;base64,")


def picture_from_data_url(url, width: int, height: int) -> bytes:
    """The file inside a drawing's data URL, priced before anything is decoded.

    A drawing of at most `width` x `height` pixels arrives as a PNG (or JPEG) data URL that a
    browser can forge. Its length is checked before the base64 is decoded (at most what the
    least compressible picture of that size takes), then its format and its width and height
    from the header, against the drawing's own size and MAX_PIXELS, before any pixel is
    decoded. Returns the file's bytes, still undecoded; anything else is one ImageError.
    """
    if not isinstance(url, str) or not url.startswith(_DATA_URL_PREFIXES):
        raise ImageError("The drawing did not arrive as a PNG or JPEG picture.")
    # an RGBA PNG without compression: 4 bytes a pixel and a filter byte a row, plus slack
    # for the format's chunks; base64 takes 4 characters for 3 bytes
    most_bytes = height * (1 + 4 * width) + 65536
    if len(url) > len(_DATA_URL_PREFIXES[1]) + 4 * (-(-most_bytes // 3)):
        raise ImageError(
            f"The drawing is larger than a {width}x{height} picture can be, so it was not read."
        )
    try:
        data = base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("The drawing's picture is not valid base64, so it was not read.") from None
    img = _open(data)  # the header only
    if img.format not in ("PNG", "JPEG"):
        raise ImageError("The drawing did not arrive as a PNG or JPEG picture.")
    w, h = img.size
    _check_size((w, h))
    if w > width or h > height:
        raise ImageError(
            f"The drawing is {w}x{h} pixels, larger than its {width}x{height} canvas, "
            "so it was not read."
        )
    return data


def _open(data: bytes) -> Image.Image:
    """Open a file lazily (header only) and refuse unaccepted formats before any decoding."""
    if not data:
        raise ImageError("The file is empty, so there is no picture in it.")
    try:
        with warnings.catch_warnings():
            # PIL warns about corrupt EXIF and above its own pixel limit (ours, checked
            # next, is lower); where warnings are errors, that must not refuse a good file.
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data.startswith(_SIGNATURES) or data[:4] + data[8:12] == b"RIFFWEBP":
            raise ImageError(
                "The image file is truncated or corrupt and could not be read."
            ) from None
        raise ImageError(
            f"This file is not a picture; please give a {_ACCEPTED_TEXT} image."
        ) from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"The image is far too large; the limit is {MAX_PIXELS / 1e6:g} megapixels."
        ) from None
    except Exception:  # a header parser fed untrusted bytes can raise anything
        raise ImageError("The image file is truncated or corrupt and could not be read.") from None
    fmt = "JPEG" if img.format == "MPO" else img.format  # phone cameras' JPEGs open as MPO
    if fmt not in ACCEPTED_FORMATS:
        raise ImageError(
            f"This picture is in {img.format} format; only {_ACCEPTED_TEXT} images are accepted."
        )
    return img


def _from_array(a: np.ndarray) -> Image.Image:
    """A canvas's (H, W, 4) RGBA array, or an (H, W) grey or (H, W, 3) RGB one, as an image."""
    if not (a.ndim == 2 or a.ndim == 3 and a.shape[2] in (3, 4)) or a.dtype != np.uint8:
        raise ImageError(
            f"A picture array must be uint8 of shape (H, W), (H, W, 3) or (H, W, 4), "
            f"not {a.dtype} of shape {a.shape}."
        )
    return Image.fromarray(np.ascontiguousarray(a))  # PIL picks L, RGB or RGBA from the shape


def _check_size(size: tuple[int, int]) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"The image is {w}x{h} pixels; the limit is {MAX_PIXELS / 1e6:g} megapixels."
        )
    if w * h == 0:
        raise ImageError("The image has no digit in it: it has no pixels at all.")


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation a camera recorded; a malformed EXIF block is ignored."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF is common; the pixels are still fine
        return img


def _high_depth(a: np.ndarray) -> np.ndarray:
    """Grey levels of a 16/32-bit or float image in [0, 1]."""
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)  # (H, W); float files may hold NaN
    # These modes have no fixed range: assume the smallest usual one the values fit in.
    top = float(a.max(initial=0))
    scale = 1.0 if top <= 1 else 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
    return np.clip(a / scale, 0, 1)
