"""preprocess: any picture becomes an MNIST-style digit; a bad file, one clear ImageError."""

import io
import pickle
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFile, ImageFilter, ImageFont, ImageOps
from torch.testing import assert_close

from conftest import need
from digit_pictures import (
    find_fonts,
    frame,
    glyph_mask,
    paint,
    place,
    render_digit_pictures,
    render_messy_digits,
    specks,
)
from mlp_core.vision.digits import ImageError, Preprocessed, preprocess, surer

# A warning from decoding must never surface, let alone become an error.
pytestmark = pytest.mark.filterwarnings("error")

MODEL = Path(__file__).resolve().parents[1] / "models" / "default.pt"
ACCEPTED = "PNG, JPEG, BMP, GIF or WEBP"


def encode(img: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def drawing(shape: str, size=(200, 200), ink=0, paper=255) -> Image.Image:
    """A hard-edged "L" drawing: a thick '1' or a ring off in a corner, or a '7'."""
    img = Image.new("L", size, paper)
    draw = ImageDraw.Draw(img)
    if shape == "one":
        draw.line([(30, 12), (22, 90)], fill=ink, width=9)
        draw.line([(30, 12), (16, 28)], fill=ink, width=7)
    elif shape == "ring":
        draw.ellipse((120, 110, 185, 190), outline=ink, width=10)
    elif shape == "seven":  # asymmetric, so a wrong rotation shows
        draw.line([(60, 40), (140, 40), (90, 170)], fill=ink, width=12)
    return img


def printed(digit: int, angle: float = 0.0) -> np.ndarray:
    """Antialiased ink coverage (H, W) of a printed digit on a canvas with margins."""
    font = ImageFont.truetype(str(find_fonts()[0]), 90)
    return place(glyph_mask(digit, font, 2, angle), np.random.default_rng(digit))


def centre_of_mass(t: torch.Tensor) -> tuple[float, float]:
    img = t[0]  # (28, 28)
    i = torch.arange(28.0)
    return float(img.sum(1) @ i / img.sum()), float(img.sum(0) @ i / img.sum())


def ink_box(t: torch.Tensor) -> tuple[int, int]:
    rows, cols = t[0].gt(0).any(1).nonzero(), t[0].gt(0).any(0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def refused(source, pattern: str) -> str:
    """preprocess(source) raises ImageError whose one-sentence message matches pattern."""
    with pytest.raises(ImageError) as info:
        preprocess(source)
    message = str(info.value)
    assert re.search(pattern, message), message
    assert message.endswith(".") and "\n" not in message and ". " not in message, message
    return message


# --- the MNIST recipe: box, centre, polarity, range -----------------------------------------


def test_digit_sized_marks_side_by_side_are_counted():
    """A picture of a number, read as one digit, says how many digit-sized marks stand side by
    side (the Predict page and the CLI point to reading it as a number); a 5 whose flag stands
    apart above its body is one mark, and so is a digit with a speck beside it."""
    font = ImageFont.truetype(str(find_fonts()[0]), 90)
    number = Image.new("L", (400, 150), 255)
    ImageDraw.Draw(number).text((20, 20), "3 0 5", font=font, fill=0)
    five = Image.new("L", (200, 200), 255)
    pen = ImageDraw.Draw(five)
    pen.line([(70, 30), (140, 30)], fill=0, width=12)  # the flag, apart from the body
    pen.line([(72, 50), (70, 100)], fill=0, width=12)
    pen.arc((55, 80, 150, 175), start=-110, end=150, fill=0, width=12)
    seven = drawing("seven")
    ImageDraw.Draw(seven).ellipse((160, 150, 163, 153), fill=0)  # a speck
    counts = [preprocess(encode(img)).side_by_side for img in (number, five, seven)]
    assert counts == [3, 1, 1]
    # in a marker's thick strokes, the picture as written (`surer` may keep it) says it too
    marker = Image.new("L", (300, 170), 255)
    ImageDraw.Draw(marker).text((25, 25), "11", font=font, fill=0, stroke_width=6)
    prep = preprocess(encode(marker))
    assert prep.written is not None and prep.written.side_by_side == prep.side_by_side == 2


@pytest.mark.parametrize("shape", ["one", "ring", "seven"])
def test_off_centre_digit_is_scaled_to_20_and_centred(shape):
    out = preprocess(drawing(shape))
    h, w = ink_box(out.tensor)
    assert max(h, w) in (19, 20) and min(h, w) <= 20, (h, w)  # larger side ~20, aspect kept
    cy, cx = centre_of_mass(out.tensor)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)


def test_output_is_float32_in_unit_range_with_full_ink():
    out = preprocess(drawing("ring"))
    assert isinstance(out, Preprocessed)
    assert out.tensor.shape == (1, 28, 28) and out.tensor.dtype == torch.float32
    assert out.tensor.min() == 0 and 0.95 <= out.tensor.max() <= 1
    assert out.tensor[0, :, :3].sum() == 0 and out.tensor[0, :3].sum() == 0  # margins stay black


def test_preview_is_exactly_what_the_network_sees():
    out = preprocess(Image.fromarray((printed(3) * 255).astype(np.uint8)))
    assert out.preview.mode == "L" and out.preview.size == (28, 28)
    expected = (out.tensor[0] * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(np.asarray(out.preview), expected)


def test_dark_on_light_equals_light_on_dark():
    light_ink = Image.fromarray((printed(4, angle=6) * 255).round().astype(np.uint8))
    dark_ink = ImageOps.invert(light_ink)
    assert_close(preprocess(dark_ink).tensor, preprocess(light_ink).tensor, atol=1e-4, rtol=0)
    assert_close(
        preprocess(drawing("one")).tensor, preprocess(drawing("one", ink=255, paper=0)).tensor
    )


def test_bold_digit_filling_most_of_a_tight_crop_keeps_its_polarity():
    img = Image.new("L", (60, 80), 255)  # the ink covers well over half of the picture
    ImageDraw.Draw(img).rectangle((2, 2, 57, 77), outline=0, width=22)
    out = preprocess(img)
    assert out.tensor[0, 14, 14] == 0 and out.tensor[0, 5, 14] > 0.9  # a ring, not a blob


def test_uneven_noisy_grey_photo_matches_clean_scan():
    cover = printed(5)
    rng = np.random.default_rng(0)
    clean = preprocess(paint(cover, "paper", rng)).tensor
    for _ in range(3):
        photo = encode(paint(cover, "photo", rng), "JPEG", quality=80)
        got = preprocess(photo).tensor
        assert (got - clean).abs().mean() < 0.03
        assert abs(np.subtract(ink_box(got), ink_box(clean))).max() <= 1


def test_dim_photo_with_strong_lighting_gradient_and_thin_ink():
    # Paper from 0.35 to 0.6 across the picture; ink only 0.15 darker: a global
    # threshold alone would split the paper in two halves.
    cover = printed(7)
    h, w = cover.shape
    paper = 0.35 + 0.25 * np.linspace(0, 1, w)[None, :] * np.ones((h, 1))
    gray = paper - 0.15 * cover
    photo = Image.fromarray((gray * 255).round().astype(np.uint8))
    clean = preprocess(Image.fromarray((cover * 255).round().astype(np.uint8))).tensor
    assert (preprocess(photo).tensor - clean).abs().mean() < 0.03


def test_every_source_type_gives_the_same_result(tmp_path):
    img = drawing("seven").convert("RGBA")
    data = encode(img)
    (tmp_path / "seven.png").write_bytes(data)
    expected = preprocess(data).tensor
    for source in (str(tmp_path / "seven.png"), tmp_path / "seven.png", img, np.asarray(img)):
        assert_close(preprocess(source).tensor, expected)


# --- transparency, modes, orientation, animation --------------------------------------------


@pytest.mark.parametrize("ink", [255, 0], ids=["white-ink", "black-ink"])
def test_transparent_png_equals_its_flattened_twin(ink):
    alpha = (printed(2, angle=-5) * 255).round().astype(np.uint8)  # antialiased edges
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., :3] = np.where(alpha[..., None] > 0, ink, 0)  # black under alpha 0, as on a canvas
    rgba[..., 3] = alpha
    clear = Image.fromarray(rgba)
    background = Image.new("RGBA", clear.size, (255 - ink,) * 3 + (255,))
    twin = Image.alpha_composite(background, clear).convert("RGB")
    expected = preprocess(encode(twin)).tensor
    assert_close(preprocess(encode(clear)).tensor, expected, atol=0.02, rtol=0)
    assert_close(preprocess(rgba).tensor, expected, atol=0.02, rtol=0)  # the canvas array


def test_transparent_margin_around_a_scanned_page_takes_the_paper_colour():
    page = drawing("ring").convert("RGBA")
    a = np.asarray(page).copy()
    a[:10, :, 3] = 0  # a transparent strip, e.g. a rounded screenshot corner
    a[:10, :, :3] = 0
    assert_close(preprocess(a).tensor, preprocess(drawing("ring")).tensor)


def as_mode(img: Image.Image, mode: str) -> Image.Image:
    """The same "L" picture in another PIL mode."""
    if mode == "I;16":
        return Image.fromarray(np.asarray(img).astype(np.uint16) * 257)  # 16-bit, full range
    if mode == "P-transparent":
        p = img.convert("P")
        p.info["transparency"] = p.getpixel((0, 0))  # the paper is the transparent colour
        return p
    return img.convert(mode)


@pytest.mark.parametrize(
    "mode", ["1", "L", "LA", "P", "P-transparent", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]
)
def test_every_pil_mode_gives_the_same_digit(mode):
    # Antialiased grey edges show a wrong bit depth scale; mode "1" dithers them, so it
    # gets a hard-edged drawing.
    img = (
        drawing("seven")
        if mode == "1"
        else Image.fromarray((255 - printed(9) * 255).astype(np.uint8))
    )
    assert_close(preprocess(as_mode(img, mode)).tensor, preprocess(img).tensor)


def test_coloured_ink_is_read_by_its_brightness():
    cover = printed(3)[..., None]  # (H, W, 1)
    red_pen = np.array([255, 30, 30]) * cover + 255 * (1 - cover)  # the red channel shows nothing
    black_pen = 255 * (1 - cover) * np.ones(3)
    got, expected = (preprocess(a.round().astype(np.uint8)) for a in (red_pen, black_pen))
    assert (got.tensor - expected.tensor).abs().mean() < 0.02


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "WEBP", "JPEG"])
def test_every_accepted_format_is_read(fmt):
    img = drawing("seven").convert("RGB")
    params = {"lossless": True} if fmt == "WEBP" else {"quality": 95} if fmt == "JPEG" else {}
    got = preprocess(encode(img, fmt, **params)).tensor
    assert (got - preprocess(img).tensor).abs().mean() < 0.01


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_photo_equals_the_upright_one(fmt, orientation):
    upright = drawing("seven").convert("RGB")
    # Orientation 6 means "rotate 90 degrees clockwise to display": the pixels were stored
    # turned the other way. 8 is the mirror case.
    turn = Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = encode(upright.transpose(turn), fmt, exif=exif.tobytes())
    expected = preprocess(encode(upright, fmt)).tensor
    got = preprocess(stored).tensor
    assert (got - expected).abs().mean() < 0.01
    ignored = preprocess(upright.transpose(turn)).tensor  # same pixels, orientation ignored
    assert (ignored - expected).abs().mean() > 0.05


def test_malformed_exif_is_ignored():
    img = drawing("seven").convert("RGB")
    broken = encode(img, "JPEG", exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff garbage")
    assert (preprocess(broken).tensor - preprocess(img).tensor).abs().mean() < 0.01


def test_animated_gif_uses_its_first_frame():
    first, second = drawing("one").convert("P"), drawing("ring").convert("P")
    gif = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(io.BytesIO(gif)).n_frames == 2
    assert_close(preprocess(gif).tensor, preprocess(drawing("one")).tensor)


# --- bad input: one ImageError sentence each ------------------------------------------------


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("digit.png", b"not really")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is text",
        b"<!doctype html><html><body><img src='7.png'></body></html>",
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
        pickle.dumps({"weights": [1, 2, 3]}),
        zip_bytes(),
        np.random.default_rng(0).bytes(5000),
    ],
    ids=["text", "html", "pdf", "pickle", "zip", "random"],
)
def test_not_an_image_is_refused(data, tmp_path):
    refused(data, "not a picture.*PNG, JPEG, BMP, GIF or WEBP")
    (tmp_path / "digit.png").write_bytes(data)  # the name does not make it a picture
    refused(tmp_path / "digit.png", "not a picture")


def test_empty_file_is_refused():
    refused(b"", "empty")


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PPM", "EPS"])
def test_unaccepted_format_is_refused_by_content(fmt, tmp_path):
    path = tmp_path / "digit.png"  # named .png, but the bytes say otherwise
    path.write_bytes(encode(drawing("one").convert("RGB"), fmt))
    refused(path, f"This picture is in {fmt} format; only {ACCEPTED} images are accepted")


def refuse_decoding(monkeypatch):
    """Make any pixel decoding fail loudly, to prove a refusal came from the header alone."""

    def no_load(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)


def test_too_many_pixels_is_refused_before_decoding(monkeypatch):
    data = encode(Image.new("1", (10000, 10000), 1))  # 100 megapixels in ~12 kB
    assert len(data) < 100_000
    refuse_decoding(monkeypatch)
    refused(data, r"^The image is 10000x10000 pixels; the limit is 25 megapixels\.$")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims another size (a decompression bomb's calling card)."""
    data = bytearray(encode(Image.new("L", (8, 8))))
    data[16:24] = struct.pack(">II", width, height)  # IHDR width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR's CRC
    return bytes(data)


def test_decompression_bomb_is_refused(monkeypatch):
    refuse_decoding(monkeypatch)
    refused(png_claiming(6000, 5000), "6000x5000 pixels; the limit is 25 megapixels")
    refused(png_claiming(30000, 30000), "too large; the limit is 25 megapixels")


def test_huge_canvas_array_is_refused():
    refused(np.zeros((1, 25_000_001, 4), np.uint8), "the limit is 25 megapixels")


def corrupt(kind: str) -> bytes:
    png = encode(Image.fromarray((printed(8) * 255).astype(np.uint8)))
    if kind == "truncated png":
        return png[: len(png) // 2]
    if kind == "bad crc":
        data = bytearray(png)
        data[png.index(b"IDAT") + 20] ^= 0xFF  # flip bits inside the pixel data
        return bytes(data)
    jpeg = encode(drawing("ring").convert("RGB"), "JPEG")
    return jpeg[: len(jpeg) // 3]


def test_mangled_files_raise_nothing_but_image_error():
    rng = np.random.default_rng(0)
    img = drawing("ring").convert("RGB").resize((64, 64))
    files = [encode(img, fmt) for fmt in ("PNG", "JPEG", "BMP", "WEBP")]
    files.append(encode(img.convert("P"), "GIF"))
    for i in range(250):
        data = bytearray(files[i % len(files)])
        at = int(rng.integers(len(data)))
        if i % 3 == 0:
            data[at] ^= int(rng.integers(1, 256))  # a flipped byte
        elif i % 3 == 1:
            del data[at : at + int(rng.integers(1, 40))]  # a lost stretch
        else:
            data[at:at] = rng.bytes(int(rng.integers(1, 20)))  # inserted garbage
        try:
            out = preprocess(bytes(data))
        except ImageError:
            continue
        assert out.tensor.shape == (1, 28, 28) and 0 <= out.tensor.min() <= out.tensor.max() <= 1


@pytest.mark.parametrize("kind", ["truncated png", "bad crc", "truncated jpeg"])
def test_truncated_or_corrupt_file_is_refused(kind):
    refused(corrupt(kind), "truncated or corrupt")


@pytest.mark.parametrize(
    "source",
    [
        np.zeros((280, 280, 4), np.uint8),  # an untouched canvas: fully transparent
        encode(Image.new("RGBA", (50, 50), (255, 255, 255, 0))),
        encode(Image.new("L", (50, 50), 255)),
        encode(Image.new("RGB", (50, 50), (0, 0, 0)), "JPEG"),
        np.random.default_rng(0).integers(196, 204, (64, 64, 3), np.uint8),
    ],
    ids=["empty canvas", "transparent png", "white", "black jpeg", "blank noisy paper"],
)
def test_no_ink_is_refused(source):
    refused(source, "^The image has no digit in it: ")


def test_blank_paper_under_a_lighting_gradient_is_refused():
    paper = np.linspace(120, 230, 200)[None, :] * np.ones((150, 1))
    noisy = paper + np.random.default_rng(1).normal(0, 3, paper.shape)
    refused(encode(Image.fromarray(noisy.clip(0, 255).astype(np.uint8)), "JPEG"), "no digit")


def test_missing_file_and_wrong_array_are_refused(tmp_path):
    refused(tmp_path / "nothing-here.png", "Cannot read .*No such file")
    refused(np.zeros((28, 28, 2), np.uint8), "must be uint8 of shape")
    refused(np.zeros((28, 28, 1), np.uint8), "must be uint8 of shape")
    refused(np.zeros((28, 28), np.float64), "must be uint8 of shape")


# --- does it help a real model? -------------------------------------------------------------


def plain_resize(data: bytes) -> torch.Tensor:
    """What a naive app does: grey, squash to 28x28, divide by 255."""
    img = Image.open(io.BytesIO(data)).convert("L").resize((28, 28))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255)  # (28, 28)


@pytest.mark.filterwarnings("default")  # a torch.load deprecation must not fail this test
def test_shipped_model_reads_rendered_digits(report):
    need(MODEL.exists(), f"{MODEL} is missing: train and save the default model first")
    from mlp_core.checkpoint import load_checkpoint

    model = load_checkpoint(MODEL).model
    pictures = render_digit_pictures(seed=0)
    assert len(pictures) >= 200
    labels = torch.tensor([label for _, label, _ in pictures])
    ours = torch.stack([p.tensor for p in surer(model, [preprocess(d) for d, _, _ in pictures])])
    naive = torch.stack([plain_resize(data) for data, _, _ in pictures])  # (N, 28, 28)
    with torch.no_grad():
        guess_ours, guess_naive = model(ours).argmax(1), model(naive).argmax(1)
    acc_ours = (guess_ours == labels).float().mean().item()
    acc_naive = (guess_naive == labels).float().mean().item()
    report(f"{len(pictures)} pictures: preprocess {acc_ours:.1%}, plain resize {acc_naive:.1%}")
    misses = [f"{t} -> {int(g)}" for (_, _, t), g, y in zip(pictures, guess_ours, labels) if g != y]
    assert acc_ours >= 0.90, "\n".join(misses)


# --- messier paper: frames, page edges, specks, shadows, markers and hairlines --------------


@pytest.fixture(scope="module")
def model():
    need(MODEL.exists(), f"{MODEL} is missing: train and save the default model first")
    from mlp_core.checkpoint import load_checkpoint

    return load_checkpoint(MODEL).model.eval()


def read(model, source) -> int | None:
    """The shipped model's digit for a picture, read as the app reads it (`surer`); None when
    preprocess finds no digit."""
    try:
        tensor = surer(model, [preprocess(source)])[0].tensor
    except ImageError:
        return None
    with torch.no_grad():
        return int(model(tensor).argmax())


def stroke_px(t: torch.Tensor) -> float:
    """The stroke width of a 28x28 digit in pixels: twice its ink over its outline."""
    m = t[0] > 0.5
    inner = m.clone()
    inner[1:] &= m[:-1]
    inner[:-1] &= m[1:]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return 2 * m.sum().item() / max(1, (m.sum() - inner.sum()).item())


# Without the component filtering and stroke evening, the shipped model read these 40
# pictures per kind at: frame 75%, specks 52.5%, page edge 10%, shadow 75%, thick 45%.
@pytest.mark.filterwarnings("default")
@pytest.mark.parametrize(
    "kind, least",
    [("frame", 0.9), ("specks", 0.9), ("page edge", 0.85), ("shadow", 0.8), ("thick", 0.65)],
)
def test_messy_paper_is_read(model, report, kind, least):
    pictures = render_messy_digits(kind, seed=0, n=40)
    right = sum(read(model, data) == digit for data, digit, _ in pictures)
    report(f"{kind}: {right} of {len(pictures)} read right")
    assert right / len(pictures) >= least


@pytest.mark.parametrize("mess", ["frame", "specks"])
def test_a_frame_or_specks_leave_the_digit_as_it_was(mess):
    rng = np.random.default_rng(1)
    cover = printed(4)
    messy = frame(cover, rng) if mess == "frame" else specks(cover, rng)
    clean = preprocess(Image.fromarray((cover * 255).round().astype(np.uint8))).tensor
    got = preprocess(Image.fromarray((messy * 255).round().astype(np.uint8))).tensor
    assert (got - clean).abs().mean() < 0.02


def test_marker_thick_strokes_are_thinned_towards_mnist():
    preps = [preprocess(d) for d, _, _ in render_messy_digits("thick", n=20)]
    widths = [stroke_px(p.tensor) for p in preps]
    assert np.median(widths) < 4.5, widths  # MNIST's median is 2.6; unthinned, these were 6.5
    # as written, within MNIST's range: 99% of its digits are under 5.0 px
    written = [stroke_px(p.written.tensor) for p in preps if p.written is not None]
    assert len(written) >= 18 and np.median(written) < 5.0, written


def test_thick_handwriting_keeps_its_strokes_and_is_read(model, mnist_root):
    """The 200 thickest pens among MNIST's test digits, photographed 4x as large, keep their
    strokes as written (`written`), and `surer` reads them as well as MNIST's own pictures,
    give or take three. Thinned to the usual pen alone (as before), their strokes were 0.56 as
    wide (as written, 0.88), a 6 whose loop the pen filled became an outline read 0, and 13 of
    the thickest 300 more were misread."""
    from mlp_core.data import load_mnist
    from mlp_core.metrics import predict_probs

    split = load_mnist(False, mnist_root, download=False)
    written = np.array([stroke_px(d[None].float() / 255) for d in split.images])  # (10000,)
    thickest = np.argsort(written)[-200:]
    preps = []
    for k in thickest:
        photo = Image.fromarray(255 - split.images[k].numpy())  # dark ink on white
        preps.append(preprocess(photo.resize((112, 112), Image.Resampling.BICUBIC)))
    assert sum(p.written is not None for p in preps) >= 180  # pens thicker than most of MNIST's
    as_written = [p.written or p for p in preps]
    ratios = [stroke_px(p.tensor) / w for p, w in zip(as_written, written[thickest], strict=True)]
    assert np.median(ratios) > 0.85, np.round(ratios, 2)
    truth = split.labels[thickest]
    own = (predict_probs(model, split.images[thickest]).argmax(1) == truth).sum().item()
    chosen = torch.cat([p.tensor for p in surer(model, preps)])
    assert (predict_probs(model, chosen).argmax(1) == truth).sum().item() >= own - 3


class _InkJudge(torch.nn.Module):
    """A stand-in network whose first logit is `per_ink` times a picture's ink: with per_ink
    > 0 it is the surer the more ink it sees, with per_ink < 0 the less."""

    def __init__(self, per_ink: float):
        super().__init__()
        self.per_ink = torch.nn.Parameter(torch.tensor(per_ink))

    def forward(self, x):
        logit = self.per_ink * x.reshape(len(x), -1).sum(1, keepdim=True)  # (N, 1)
        return torch.cat([logit, torch.zeros(len(x), 9)], 1)  # (N, 10)


def ring(width: int) -> Image.Image:
    """An 80 px tall ring drawn with a pen `width` px wide, dark on white."""
    img = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(img).ellipse((60, 60, 125, 140), outline=0, width=width)
    return img


def test_surer_keeps_the_picture_the_network_is_surer_of():
    thick, thin = preprocess(ring(22)), preprocess(ring(8))  # pens 0.27 and 0.1 of the ring
    assert thick.written is not None and thin.written is None
    ink, written_ink = thick.tensor.sum().item(), thick.written.tensor.sum().item()
    assert written_ink > ink * 1.2  # as written: more ink

    def chosen(per_ink: float) -> list:
        return surer(_InkJudge(per_ink / ink), [thick, thin])

    # fond of ink, the network is surer of the picture as written by far more than 0.1
    assert chosen(2.0)[0] is thick.written and chosen(2.0)[1] is thin
    assert chosen(-2.0)[0] is thick  # shy of ink: the thinned picture, as before
    assert chosen(0.01)[0] is thick  # surer of the one as written, but by less than 0.1
    assert surer(_InkJudge(1.0), []) == []


HAIRLINES = {
    0: [
        (140, 50),
        (90, 80),
        (80, 140),
        (95, 210),
        (140, 235),
        (185, 210),
        (200, 140),
        (190, 80),
        (140, 50),
    ],
    2: [(80, 90), (110, 60), (170, 60), (200, 95), (190, 140), (90, 230), (210, 230)],
    7: [(70, 60), (210, 60), (120, 230)],
}  # fmt: skip  (a "1", one straight line, was read even unthickened)


@pytest.mark.filterwarnings("default")
@pytest.mark.parametrize("pen", [2, 3])
@pytest.mark.parametrize("digit", sorted(HAIRLINES))
def test_a_hairline_is_thickened_and_read(model, digit, pen):
    img = Image.new("L", (560, 560), 255)  # a fine pen on a large sheet: 2-3 px in 400
    ImageDraw.Draw(img).line([(2 * x, 2 * y) for x, y in HAIRLINES[digit]], 0, pen, "curve")
    out = preprocess(img).tensor
    assert stroke_px(out) >= 1.5  # unthickened, no pixel of it reached 0.5
    assert read(model, img) == digit


def texture(blur: float, side: int = 300) -> np.ndarray:
    """Blurred random noise stretched to full contrast: a texture, like fabric or gravel."""
    rng = np.random.default_rng(int(blur))
    img = Image.fromarray(rng.integers(0, 256, (side, side), np.uint8))
    a = np.asarray(img.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float64)
    return np.clip((a - a.mean()) / a.std() * 50 + 128, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "source",
    [
        np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8),
        np.random.default_rng(1).integers(0, 256, (200, 200), np.uint8),
        np.random.default_rng(2).integers(0, 256, (600, 600, 3), np.uint8),
        np.clip(np.random.default_rng(3).normal(128, 40, (200, 200)), 0, 255).astype(np.uint8),
        texture(5),
    ],
    ids=["noise 64", "noise 200", "noise 600", "gaussian noise", "texture"],
)
def test_noise_and_textures_have_no_digit(source):
    refused(encode(Image.fromarray(source)), "^The image has no digit in it: ")


def test_digit_pictures_are_deterministic_and_varied():
    first, again, other = (render_digit_pictures(seed, n=20) for seed in (3, 3, 4))
    assert first == again and first != other
    assert [label for _, label, _ in first] == [i % 10 for i in range(20)]
    assert {data[:4] for data, _, _ in first} == {b"\x89PNG", b"\xff\xd8\xff\xe0"}  # PNG and JPEG
