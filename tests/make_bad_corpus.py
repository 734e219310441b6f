"""Write a corpus of hostile and awkward upload files, made here from scratch (never downloaded).

`write_bad_corpus(folder)` writes every file and returns one Case per file: the name a user
would upload it under, what a reader must answer (a digit, any digit, or an error sentence),
and why it is in the corpus. Run it as a script to look at the files:

    python tests/make_bad_corpus.py /tmp/bad_corpus
"""

import io
import pickle
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ACCEPTED = "PNG, JPEG, BMP, GIF or WEBP"
NOT_A_PICTURE = rf"^This file is not a picture; please give a {ACCEPTED} image\.$"
CORRUPT = r"^The image file is truncated or corrupt and could not be (decoded|read)\.$"
NO_DIGIT = r"^The image has no digit in it: "
ANY_DIGIT = -1  # a picture with no true digit (a dash, a sliver): any answer will do
# the file a pickle payload would create if anything ever unpickled it
MARKER = "PAYLOAD_RAN"


def too_large(w: int, h: int) -> str:
    return rf"^The image is {w}x{h} pixels; the limit is 25 megapixels\.$"


def refused_format(fmt: str) -> str:
    return rf"^This picture is in {fmt} format; only {ACCEPTED} images are accepted\.$"


@dataclass(frozen=True)
class Case:
    name: str  # the file's name, as uploaded
    expect: int | str  # the digit to read (ANY_DIGIT: any), or a regex for the error sentence
    why: str


def seven(size: int = 280, mode: str = "L") -> Image.Image:
    """A thick white 7 on black, as drawn on the dashboard's 280x280 canvas."""
    img = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(img).line([(70, 60), (210, 60), (120, 230)], fill=255, width=18)
    img = img.resize((size, size), Image.Resampling.LANCZOS) if size != 280 else img
    return img.convert(mode)


def three() -> Image.Image:
    img = Image.new("L", (120, 120), 0)
    d = ImageDraw.Draw(img)
    d.arc((30, 10, 90, 62), 200, 90, fill=255, width=9)
    d.arc((30, 56, 90, 112), 270, 160, fill=255, width=9)
    return img


def encode(img: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def bad_crc(png: bytes) -> bytes:
    data = bytearray(png)
    crc_at = png.index(b"IHDR") + 4 + 13  # after IHDR's type and its 13 bytes of data
    data[crc_at] ^= 0xFF
    return bytes(data)


def psd(img: Image.Image) -> bytes:
    """A minimal Photoshop file (PIL reads PSD but cannot write it): header, raw grey pixels."""
    w, h = img.size
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 1, h, w, 8, 1)  # v1, 1 channel, 8 bit, grey
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, resources, layers: all empty
    return header + sections + struct.pack(">H", 0) + img.convert("L").tobytes()  # raw data


def gif_frames(n: int) -> bytes:
    """An animated GIF: a 3 first, then n - 1 frames of a dot moving (each frame differs)."""
    first = three().convert("P")
    rest = []
    for i in range(n - 1):
        f = Image.new("L", (120, 120), 0)
        x, y = (i * 7) % 110, (i * 13) % 110
        ImageDraw.Draw(f).rectangle((x, y, x + 9, y + 9), fill=255)
        rest.append(f.convert("P"))
    return encode(first, "GIF", save_all=True, append_images=rest, duration=20, loop=0)


def exif_oriented(orientation: int) -> bytes:
    """A JPEG of a 7 stored turned or mirrored, with the EXIF orientation that undoes it."""
    undo = {  # what a viewer applies for each orientation; stored = its inverse of upright
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }[orientation]
    turns = {Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270}
    inverse = {**turns, **{v: k for k, v in turns.items()}}.get(undo, undo)  # flips undo themselves
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(
        seven().convert("RGB").transpose(inverse), "JPEG", quality=92, exif=exif.tobytes()
    )


class _Payload:
    """Creates MARKER beside the corpus when unpickled, if anything ever unpickles it."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("digit.png", encode(seven()))
    return buf.getvalue()


SVG = b"""<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" width="280" height="280">
<rect width="280" height="280" fill="black"/>
<polyline points="70,60 210,60 120,230" stroke="white" stroke-width="18" fill="none"/></svg>
"""
HTML = b"<!doctype html><html><body><img src='7.png'><script>alert(1)</script></body></html>"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def write_bad_corpus(folder) -> list[Case]:
    """Write every file of the corpus into `folder`; return what each must give."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    png7 = encode(seven())
    jpg7 = encode(seven().convert("RGB"), "JPEG", quality=92)
    rgba7 = np.zeros((280, 280, 4), np.uint8)  # white ink on a transparent canvas
    rgba7[..., :3] = 255
    rgba7[..., 3] = np.asarray(seven())
    i16 = Image.fromarray(np.asarray(seven()).astype(np.uint16) * 257)  # 16-bit, full range
    p_clear = seven().convert("P")
    dash = Image.new("L", (10000, 1), 255)
    ImageDraw.Draw(dash).line([(4000, 0), (6000, 0)], fill=0)
    files: list[tuple[str, bytes, int | str, str]] = [
        ("seven.png", png7, 7, "a clean drawing: the control"),
        # decompression bombs: tiny on disk, gigantic decoded
        ("bomb_10000x10000.png", encode(Image.new("1", (10000, 10000), 1)),
         too_large(10000, 10000), "100 megapixels in 32 kB"),
        ("bomb_20000x20000.png", encode(Image.new("1", (20000, 20000), 1)),
         r"^The image is far too large; the limit is 25 megapixels\.$", "400 megapixels in 90 kB"),
        ("bomb.gif", encode(Image.new("P", (12000, 12000), 0), "GIF"),
         too_large(12000, 12000), "a GIF of 144 megapixels in 107 kB"),
        # broken files
        ("png_half.png", png7[: len(png7) // 2], CORRUPT, "a PNG cut in half"),
        ("png_one_byte_short.png", png7[:-1], 7, "a PNG missing the last byte of IEND"),
        ("jpeg_half.jpg", jpg7[: len(jpg7) // 2], CORRUPT, "a JPEG cut in half"),
        ("jpeg_one_byte_short.jpg", jpg7[:-1], CORRUPT, "a JPEG missing its last byte"),
        ("bad_crc.png", bad_crc(png7), CORRUPT, "a PNG whose header chunk fails its CRC"),
        ("png_cut_in_header.png", png7[:20], CORRUPT, "a PNG cut inside its header chunk"),
        ("empty.png", b"", r"^The file is empty, so there is no picture in it\.$", "0 bytes"),
        ("random.png", np.random.default_rng(0).bytes(4096), NOT_A_PICTURE, "random bytes"),
        # other content behind an image name
        ("zip.png", _zip(), NOT_A_PICTURE, "a zip archive holding a PNG"),
        ("page.png", HTML, NOT_A_PICTURE, "an HTML page with a script"),
        ("drawing.png", SVG, NOT_A_PICTURE, "an SVG drawing of a 7"),
        ("document.png", PDF, NOT_A_PICTURE, "a PDF"),
        ("pickle.png", pickle.dumps(_Payload(folder / MARKER)), NOT_A_PICTURE,
         "a pickle whose loading would create a file"),
        # a right picture behind an odd name
        ("seven.exe", png7, 7, "a valid PNG named .exe"),
        ("x.PNG", png7, 7, "a valid PNG with an upper-case extension"),
        # formats not accepted, refused by content whatever the name
        ("tiff.png", encode(seven(), "TIFF"), refused_format("TIFF"), "a TIFF named .png"),
        ("psd.png", psd(seven(64)), refused_format("PSD"), "a Photoshop file named .png"),
        ("eps.png", encode(seven(64).convert("RGB"), "EPS"), refused_format("EPS"), "EPS"),
        ("ico.png", encode(seven(64), "ICO"), refused_format("ICO"), "an icon named .png"),
        # animation: the first frame only, in bounded time
        ("animated_1000.gif", gif_frames(1000), 3, "1000 frames, the first a 3"),
        # sizes
        ("1x1.png", encode(Image.new("L", (1, 1), 255)), NO_DIGIT, "a single pixel"),
        ("28x28.png", encode(seven(28)), 7, "MNIST's own size"),
        ("10000x1.png", encode(dash), ANY_DIGIT, "a one-pixel-high dash, 10000 wide"),
        # modes
        ("mode_1.png", encode(seven(mode="1")), 7, "1-bit"),
        ("mode_L.png", encode(seven()), 7, "8-bit grey"),
        ("mode_LA.png", encode(seven(mode="LA")), 7, "grey and alpha"),
        ("mode_P_transparent.png", encode(p_clear, transparency=0), 7,
         "palette with a transparent colour"),
        ("mode_RGBA.png", encode(Image.fromarray(rgba7)), 7, "white ink on a transparent canvas"),
        ("mode_I16.png", encode(i16), 7, "16-bit grey"),
        ("mode_I_tiff.png", encode(seven().convert("I"), "TIFF"), refused_format("TIFF"),
         "32-bit integers: only TIFF holds them, and TIFF is refused"),
        ("mode_F_tiff.png", encode(seven().convert("F"), "TIFF"), refused_format("TIFF"),
         "32-bit floats: only TIFF holds them, and TIFF is refused"),
        ("mode_CMYK.jpg", encode(seven(mode="CMYK"), "JPEG", quality=92), 7, "a CMYK JPEG"),
        # EXIF
        *[(f"exif_{o}.jpg", exif_oriented(o), 7, f"EXIF orientation {o}") for o in range(2, 9)],
        ("exif_malformed.jpg", encode(seven().convert("RGB"), "JPEG", exif=b"Exif\0\0MM\0*garbage"),
         7, "a malformed EXIF block"),
        ("exif_malformed.png", encode(seven(), exif=b"MM\0*\0\0\0\x08\xff\xff garbage"), 7,
         "a malformed eXIf chunk"),
        # nothing to read
        ("white.png", encode(Image.new("L", (100, 100), 255)), NO_DIGIT, "all white"),
        ("black.jpg", encode(Image.new("RGB", (100, 100)), "JPEG"), NO_DIGIT, "all black"),
        ("empty_canvas.png", encode(Image.new("RGBA", (280, 280), (0, 0, 0, 255))), NO_DIGIT,
         "an untouched canvas"),
        ("transparent.png", encode(Image.new("RGBA", (280, 280), (0, 0, 0, 0))),
         r"^The image has no digit in it: it is fully transparent\.$", "a fully clear canvas"),
    ]  # fmt: skip
    for name, data, _, _ in files:
        (folder / name).write_bytes(data)
    return [Case(name, expect, why) for name, _, expect, why in files]


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_corpus")
    for case in write_bad_corpus(out):
        size = (out / case.name).stat().st_size
        print(f"{case.name:28} {size:>9,} B  {case.why}")
