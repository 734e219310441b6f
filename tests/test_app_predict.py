"""The Predict page under AppTest: drawings and uploads answered, "Why this answer?", forged
choices and upload limits, answers while a run trains, and the "A number" tab.
"""

import base64
import io
import random
import re
import struct
import zlib

import pytest
import streamlit as st
import torch
from PIL import Image, ImageDraw, ImageFile
from streamlit import config
from streamlit.testing.v1 import AppTest

import ui
from conftest import (
    DASHBOARD,
    PREDICT,
    chart_data,
    forged_values,
    open_page,
    png,
    predictions,
    seven_png,
    shown,
    start,
    wait_until_training,
)
from make_bad_corpus import seven
from mlp_core import load_checkpoint
from mlp_core.insight import activations, top_units
from mlp_core.metrics import predict_probs
from mlp_core.vision import preprocess

LONG = dict(hidden="2048, 2048", batch_size=4, epochs=20)  # long enough to act during it
SHIPPED_LABEL = f"default (shipped) · {load_checkpoint(ui.DEFAULT_MODEL).test_accuracy:.2%}"


NOT_A_PICTURE = "This file is not a picture"


def one_on_paper() -> Image.Image:
    img = Image.new("RGB", (200, 300), (245, 245, 240))
    ImageDraw.Draw(img).line([(100, 40), (100, 260)], fill=(20, 20, 20), width=16)
    return img


def test_predict_starts_with_a_hint_and_states_the_upload_limits():
    at = open_page(PREDICT)
    assert [t.label for t in at.tabs] == ["Draw", "Upload", "A number"]
    assert any(i.value.startswith("Draw a digit") for i in at.info)
    assert not at.error and not predictions(at)
    up = at.file_uploader(key="predict_files")
    assert up.accept_multiple_files
    assert set(up.allowed_type) == {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
    limits = " ".join(c.value for c in at.caption)
    assert f"up to {config.get_option('server.maxUploadSize')} MB" in limits
    assert "PNG, JPEG, BMP, GIF or WEBP" in limits and "25 megapixels" in limits
    # the sidebar's active model is preselected, shown by name with its accuracy
    model = at.selectbox(key="predict_model")
    assert model.value == ui.DEFAULT_NAME
    assert model.format_func(model.value) == SHIPPED_LABEL


def test_uploads_are_classified_and_a_bad_one_only_shows_its_sentence():
    at = open_page(PREDICT)
    at.file_uploader(key="predict_files").set_value(
        [
            ("seven.png", png(seven()), "image/png"),
            ("x.png", random.Random(0).randbytes(2000), "image/png"),  # seeded noise
            ("one on paper.jpg", png(one_on_paper(), "JPEG"), "image/jpeg"),
        ]
    ).run()
    assert not at.exception
    lines = predictions(at)
    assert len(lines) == 2
    assert re.fullmatch(r"#### Prediction: 7 \(\d+\.\d%\)", lines[0])
    assert lines[1].startswith("#### Prediction: 1 (")
    (error,) = at.error
    assert error.value.startswith("**x.png**: " + NOT_A_PICTURE)
    # each answer has its bar chart of ten probabilities (0-9 in order) and the 28x28 preview
    charts = [c for c in at.get("vega_lite_chart") if '"probability"' in c.proto.spec]
    assert len(charts) == 2
    probs = chart_data(charts[0])
    assert probs["digit"].tolist() == [str(d) for d in range(10)]
    assert probs["probability"].sum() == pytest.approx(1, abs=1e-4)
    assert probs["probability"].idxmax() == 7
    assert sum(img.captions == ["What the network sees"] for img in at.image) == 2


def test_a_picture_of_a_number_among_the_uploads_points_to_the_number_tab():
    at = open_page(PREDICT)
    paper = Image.eval(strip("704", "L"), lambda v: 255 - v).convert("RGB")  # dark on white
    at.file_uploader(key="predict_files").set_value(
        [("704.png", png(paper), "image/png"), ("seven.png", png(seven()), "image/png")]
    ).run()
    assert not at.exception and len(predictions(at)) == 2  # each is still read as one digit
    assert [i.value for i in at.info if "marks side by side" in i.value] == [
        "This picture has 3 marks side by side, read here as one digit. If it is a number, "
        "the **A number** tab reads it digit by digit."
    ]


def test_two_digits_drawn_on_the_square_point_to_the_number_tab():
    at = open_page(PREDICT)
    img = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    pen = ImageDraw.Draw(img)
    pen.line([(70, 40), (70, 240)], fill=(255, 255, 255, 255), width=18)  # a 1
    pen.line([(130, 50), (240, 50), (170, 240)], fill=(255, 255, 255, 255), width=18)  # a 7
    at.session_state["predict_canvas"] = {
        "drawing": {"raw": {"objects": [{"type": "path"}]}, "data": data_url(png(img))},
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception and len(predictions(at)) == 1  # still read as one digit
    assert [i.value for i in at.info if "marks side by side" in i.value] == [
        "This drawing has 2 marks side by side, read here as one digit. If it is a number, "
        "the **A number** tab reads it digit by digit."
    ]


def test_a_drawing_is_classified_and_an_empty_canvas_shows_the_hint():
    at = open_page(PREDICT)
    url = "data:image/png;base64," + base64.b64encode(png(seven(mode="RGBA"))).decode()
    at.session_state["predict_canvas"] = {
        "drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url},
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception
    assert predictions(at)[0].startswith("#### Prediction: 7 (")
    assert not any(i.value.startswith("Draw a digit") for i in at.info)

    # cleared with the toolbar: no objects, a black picture -> the hint again, not an error
    black = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    at.session_state["predict_canvas"] = {
        "drawing": {
            "raw": {"objects": []},
            "data": "data:image/png;base64," + base64.b64encode(png(black)).decode(),
        },
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception and not at.error and not predictions(at)
    assert any(i.value.startswith("Draw a digit") for i in at.info)


def test_a_bad_model_file_shows_its_sentence_and_the_page_keeps_working(tmp_path, monkeypatch):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model at all")
    at = open_page(PREDICT)
    model = at.selectbox(key="predict_model")
    assert model.options == [SHIPPED_LABEL, "broken · unreadable"]  # as shown
    model.set_value(broken.stem).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The model file is truncated or corrupt, or not a PyTorch file at all."
    ]
    at.file_uploader(key="predict_files").set_value(("seven.png", png(seven()), "image/png")).run()
    assert not at.exception and len(at.error) == 1 and not predictions(at)
    assert [t.label for t in at.tabs] == ["Draw", "Upload", "A number"]
    at.selectbox(key="predict_model").set_value(ui.DEFAULT_NAME).run()
    assert not at.exception and not at.error
    assert predictions(at)[0].startswith("#### Prediction: 7 (")


# -- why this answer -------------------------------------------------------------------------


def test_predict_explains_an_answer_with_activations_units_and_saliency():
    at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
    at.switch_page("app_pages/predict.py").run()
    data = seven_png()
    at.file_uploader(key="predict_files").set_value(("seven.png", data, "image/png")).run()
    assert not at.exception
    # an upload's expander starts closed, and nothing inside it is computed until it opens
    (why,) = [e for e in at.expander if e.label == "Why this answer?"]
    assert not why.proto.expanded and not why.get("vega_lite_chart") and not why.image
    (key,) = [k for k in at.session_state if str(k).startswith("predict_why_")]
    at.session_state[key] = True  # what clicking it does
    at.run()
    assert not at.exception
    (why,) = [e for e in at.expander if e.label == "Why this answer?"]

    model = load_checkpoint(ui.DEFAULT_MODEL).model
    x = preprocess(data).tensor[0]  # (28, 28)
    assert int(predict_probs(model, x).argmax()) == 7
    acts = activations(model, x)
    units = top_units(model, x, 7, k=5)

    strips = [c for c in why.get("vega_lite_chart") if '"activation"' in c.proto.spec]
    assert len(strips) == 2
    titles = [m.value for m in why.markdown if "Hidden layer" in m.value]
    for chart, title, a, n in zip(strips, titles, acts, (256, 64), strict=True):
        cells = chart_data(chart, 0)
        assert cells["unit"].tolist() == list(range(n))
        shown = torch.tensor(cells["activation"].to_numpy(), dtype=torch.float32)  # via JSON
        torch.testing.assert_close(shown, a)  # float32's tolerance: another CPU rounds otherwise
        layer = 1 + (n == 64)
        assert f"**Hidden layer {layer}**: {int((a > 0).sum())} of {n} units active" in title
    assert chart_data(strips[0], 1)["unit"].tolist() == [u for u, _ in units]  # marked
    assert len(chart_data(strips[1], 1)) == 0  # the units below are the first layer's

    captions = [i.captions[0] for i in why.image]
    assert captions[0] == "Which ink mattered"
    assert captions[1:] == [f"unit {u} · {c:+.2f}" for u, c in units]
    assert units[0][1] > 0
    assert any("The first-layer units that voted most for 7" in m.value for m in why.markdown)
    assert any("red ink pushed the answer towards 7" in c.value for c in why.caption)


def test_a_drawing_is_explained_at_once():
    at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
    at.switch_page("app_pages/predict.py").run()
    rgba = Image.open(io.BytesIO(seven_png())).convert("RGBA")
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    at.session_state["predict_canvas"] = {  # what the canvas component sends after a stroke
        "drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url},
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception
    (why,) = [e for e in at.expander if e.label == "Why this answer?"]
    assert why.proto.expanded  # one picture: its explanation is open from the start
    assert len([c for c in why.get("vega_lite_chart") if '"activation"' in c.proto.spec]) == 2
    assert [i.captions[0] for i in why.image][0] == "Which ink mattered" and len(why.image) == 6


# -- what a hostile browser sends, and a run training meanwhile ------------------------------


def test_a_forged_model_choice_is_ignored_and_never_opened(
    tmp_path, outside_model, monkeypatch, forge
):
    opened = []  # every path the page reads a model or its summary from
    ui.models._summary.cache_clear()  # (earlier tests' cached reads would hide the reads here)
    st.cache_resource.clear()
    for name in ("read_summary", "load_checkpoint"):
        real = getattr(ui.models, name)
        monkeypatch.setattr(ui.models, name, lambda p, real=real: opened.append(str(p)) or real(p))
    at = open_page(PREDICT)
    at.file_uploader(key="predict_files").set_value(("7.png", png(seven()), "image/png")).run()
    honest = predictions(at)
    assert honest and honest[0].startswith("#### Prediction: 7 (")
    forged = forged_values(tmp_path, outside_model)
    for value in forged:  # a FIFO opened would hang the page past AppTest's timeout
        forge("predict_model", value)
        at.run(timeout=20)
        assert not at.exception and not at.error, value
        assert predictions(at) == honest, f"{value}: the answer changed"
        assert at.session_state["active_model"] == ui.DEFAULT_NAME
    assert opened and not set(opened) & set(forged)
    assert set(opened) == {str(ui.DEFAULT_MODEL)}


def test_one_upload_reads_at_most_its_limit_and_says_so():
    at = open_page(PREDICT)
    n = ui.MAX_FILES_PER_UPLOAD + 5
    files = [(f"{i}.png", png(one_on_paper()), "image/png") for i in range(n)]
    at.file_uploader(key="predict_files").set_value(files).run()
    assert not at.exception
    assert len(predictions(at)) == ui.MAX_FILES_PER_UPLOAD
    (warning,) = at.warning
    assert warning.value.startswith(f"Only the first {ui.MAX_FILES_PER_UPLOAD} pictures were read")


def test_the_bytes_one_session_holds_are_bounded(monkeypatch):
    monkeypatch.setattr(ui.server, "MAX_SESSION_UPLOAD_BYTES", 3 * len(png(one_on_paper())))
    at = open_page(PREDICT)
    files = [(f"{i}.png", png(one_on_paper()), "image/png") for i in range(5)]
    at.file_uploader(key="predict_files").set_value(files).run()
    assert not at.exception and len(predictions(at)) == 3
    assert at.warning[0].value.startswith("Only the first 3 pictures were read")


def test_markup_in_a_file_name_is_shown_as_text():
    at = open_page(PREDICT)
    name = "**bold** :red[red] ![x](http://evil.example/a.png) www.evil.example.png"
    at.file_uploader(key="predict_files").set_value((name, png(seven()), "image/png")).run()
    assert not at.exception
    titles = [m.value for m in at.markdown if m.value.startswith("**") and "bold" in m.value]
    assert len(titles) == 1
    assert shown(titles[0]) == f"**{name}**"  # escaped: a reader sees exactly the name
    assert "\\*\\*bold\\*\\*" in titles[0] and "\\:red" in titles[0] and "]\\(" in titles[0]
    assert "www." not in titles[0]  # "www." would become a link even when escaped


def test_predictions_while_a_run_trains_are_the_same_twenty_times(app, report):
    start(app, **LONG)
    job = ui.trainer().current
    wait_until_training(job)
    app.switch_page("app_pages/predict.py").run()
    app.file_uploader(key="predict_files").set_value(("7.png", seven_png(), "image/png"))
    answers, steps = [], []
    for _ in range(20):
        app.run()
        assert not app.exception
        line = [m.value for m in app.markdown if "Prediction:" in m.value]
        answers.append((line, [c.proto.spec for c in app.get("vega_lite_chart")]))
        steps.append(job.snapshot().step)
    assert job.snapshot().active and steps[-1] > steps[0], "the run was not training meanwhile"
    assert all(a == answers[0] for a in answers), "an answer changed while the run trained"
    probs = predict_probs(load_checkpoint(ui.DEFAULT_MODEL).model, preprocess(seven_png()).tensor)
    assert answers[0][0] == [f"#### {ui.prediction_line(probs[0].numpy())}"]
    report(f"20 answers while the run went from batch {steps[0]} to {steps[-1]}: all the same")


# -- the "A number" tab -------------------------------------------------------------------------


# Thick strokes as drawn with the mouse, a digit 110 px wide and 150 px tall, drawn at 0.85
# of that, one digit per 130 px of the strip.
STRIP = (540, 180)  # the number canvas's size (app_pages/predict.py)
STROKES = {
    "2": [[(40, 60), (80, 30), (130, 40), (140, 80), (40, 170), (150, 170)]],
    "0": [[(90, 25), (45, 60), (40, 120), (90, 175), (135, 120), (130, 60), (90, 25)]],
    "4": [[(100, 25), (40, 120), (150, 120)], [(120, 60), (120, 180)]],
    "7": [[(40, 30), (150, 30), (80, 180)]],
}


def strip(number: str, mode: str = "RGBA") -> Image.Image:
    """White strokes on the number canvas's black, opaque like the canvas's PNG."""
    img = Image.new(mode, STRIP, (0, 0, 0, 255) if mode == "RGBA" else 0)
    draw = ImageDraw.Draw(img)
    white = (255, 255, 255, 255) if mode == "RGBA" else 255
    for k, d in enumerate(number):
        for line in STROKES[d]:
            points = [(0.85 * x + 10 + 130 * k, 0.85 * y) for x, y in line]
            draw.line(points, fill=white, width=14, joint="curve")
    return img


def open_number_tab() -> AppTest:
    return open_page(PREDICT)


def draw(at: AppTest, img: Image.Image | None) -> None:
    """Send what the canvas sends: its objects (none when cleared) and its picture."""
    picture = img if img is not None else Image.new("RGBA", STRIP, (0, 0, 0, 255))
    at.session_state["predict_number_canvas"] = {
        "drawing": {
            "raw": {"objects": [{"type": "path"}] if img is not None else []},
            "data": "data:image/png;base64," + base64.b64encode(png(picture)).decode(),
        },
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception, at.exception[0].value if at.exception else ""


def read_lines(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("#### Read:")]


def test_the_number_tab_starts_with_a_hint_and_the_other_tabs_stay():
    at = open_number_tab()
    assert [t.label for t in at.tabs] == ["Draw", "Upload", "A number"]
    assert any(i.value.startswith("Draw a number") for i in at.info)
    assert not read_lines(at) and not at.error
    assert at.file_uploader(key="predict_number_file").accept_multiple_files is False


def test_a_drawn_number_is_read_digit_by_digit():
    at = open_number_tab()
    draw(at, strip("2047"))
    assert read_lines(at) == ["#### Read: 2047"]
    previews = [i for i in at.image if re.fullmatch(r"digit \d", i.captions[0])]
    assert [i.captions[0] for i in previews] == ["digit 1", "digit 2", "digit 3", "digit 4"]
    charts = [c for c in at.get("vega_lite_chart") if '"probability"' in c.proto.spec]
    assert len(charts) == 4
    answers = [
        m.value for m in at.markdown if re.match(r"(\*\*weakest:\*\* )?(\d|unsure)", m.value)
    ]
    assert len(answers) == 4 and answers[0].endswith("%)")
    assert not any(i.value.startswith("Draw a number") for i in at.info)

    draw(at, None)  # cleared with the toolbar: the hint again, nothing read
    assert not read_lines(at) and any(i.value.startswith("Draw a number") for i in at.info)


def test_an_uploaded_photo_of_a_number_is_read():
    at = open_number_tab()
    paper = Image.eval(strip("704", "L"), lambda v: 255 - v).convert("RGB")  # dark on white
    at.file_uploader(key="predict_number_file").set_value(("n.png", png(paper), "image/png"))
    at.run()
    assert not at.exception and read_lines(at) == ["#### Read: 704"]


def test_a_bad_upload_or_a_scribble_gets_one_sentence_and_no_number():
    at = open_number_tab()
    at.file_uploader(key="predict_number_file").set_value(("x.png", b"not a picture", "image/png"))
    at.run()
    assert not at.exception and not read_lines(at)
    assert any("This file is not a picture" in i.value for i in at.info)


def test_an_unsure_digit_is_pointed_out():
    at = open_number_tab()
    img = strip("20")  # then a 1 whose flag is long enough to be a 7's bar: 1 or 7?
    white = (255, 255, 255, 255)
    ImageDraw.Draw(img).line([(301, 51), (322, 38), (327, 145)], fill=white, width=14)
    draw(at, img)  # (a crossed-out ring, used before, the network now reads as a slashed 0)
    (line,) = read_lines(at)  # a close second reading is named beside it: "201 (or 207?)"
    assert re.fullmatch(r"#### Read: 20\d( \(or 20\d\?\))?", line), line
    caution = r"Unsure: digit 3 (could be \d|is in doubt: the picture may also read 20\d)\."
    assert any(re.fullmatch(caution, c.value) for c in at.caption)
    assert sum(m.value.startswith("**weakest:** ") for m in at.markdown) == 1


# -- forged canvas values: priced before anything is decoded ------------------------------


def bomb_png(width: int, height: int) -> bytes:
    """A valid black PNG of width x height (1 bit a pixel) that compresses to a few kB."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    row = b"\0" * (1 + -(-width // 8))  # a filter byte, then 1 bit a pixel, all black
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture
def decoded(monkeypatch) -> list[tuple[int, int]]:
    """The size of every picture whose pixels are decoded; a large one is refused unread."""
    sizes = []
    load = ImageFile.ImageFile.load

    def spy(img):
        sizes.append(img.size)
        if img.size[0] * img.size[1] > 1_000_000:
            raise MemoryError("a forged canvas value was decoded")  # not really allocated
        return load(img)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return sizes


@pytest.mark.parametrize("key", ["predict_canvas", "predict_number_canvas"])
def test_a_forged_13000_square_drawing_is_refused_undecoded(decoded, key):
    bomb = bomb_png(13000, 13000)
    assert len(bomb) < 50_000  # small on the wire: it is the header that says how large
    at = open_page(PREDICT)
    at.session_state[key] = {
        "drawing": {"raw": {"objects": [{"type": "path"}]}, "data": data_url(bomb)},
        "backgroundFit": None,
    }
    at.run()
    assert not at.exception
    assert [w.value for w in at.warning] == [
        "The image is 13000x13000 pixels; the limit is 25 megapixels."
    ]
    assert not predictions(at) and not [s for s in decoded if s[0] * s[1] > 540 * 280]


def test_forged_drawings_each_get_one_sentence_and_nothing_is_decoded(decoded, monkeypatch):
    b64decoded = []
    real_b64decode = base64.b64decode
    monkeypatch.setattr(
        base64, "b64decode", lambda *a, **k: b64decoded.append(1) or real_b64decode(*a, **k)
    )
    at = open_page(PREDICT)
    huge = data_url(bomb_png(280, 280)) + "A" * 1_200_000  # longer than any 280x280 PNG
    forged = {
        huge: "The drawing is larger than a 280x280 picture can be, so it was not read.",
        data_url(bomb_png(281, 280)): (
            "The drawing is 281x280 pixels, larger than its 280x280 canvas, so it was not read."
        ),
        data_url(
            bomb_png(10, 10), "image/gif"
        ): "The drawing did not arrive as a PNG or JPEG picture.",
        "data:image/png;base64,!!!!": (
            "The drawing's picture is not valid base64, so it was not read."
        ),
        data_url(b"\x89PNG\r\n\x1a\n" + b"\0" * 40): (
            "The image file is truncated or corrupt and could not be read."
        ),
    }
    for url, sentence in forged.items():
        at.session_state["predict_canvas"] = {
            "drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url},
            "backgroundFit": None,
        }
        b64decoded.clear()
        at.run()
        assert not at.exception
        assert [w.value for w in at.warning] == [sentence]
        if url is huge:
            assert not b64decoded  # priced by its length alone
    for value in ["junk", {"drawing": "junk"}, {"drawing": {"raw": [], "data": 5}}]:
        at.session_state["predict_canvas"] = value
        at.run()
        assert not at.exception and not predictions(at)
    assert not decoded  # none of these was decoded, not even the 281x280 one
