"""The Predict page's "A number" tab, driven through Streamlit's AppTest (no browser).

A drawing is the value the canvas component sends (its JSON and a PNG data URL), put into
session state the way the browser does; an upload goes through AppTest's file_uploader API.
"""

import base64
import re

from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from conftest import PREDICT, open_page, png

# Thick strokes as drawn with the mouse, one digit per 200 px of the strip.
STROKES = {
    "2": [[(40, 60), (80, 30), (130, 40), (140, 80), (40, 170), (150, 170)]],
    "0": [[(90, 25), (45, 60), (40, 120), (90, 175), (135, 120), (130, 60), (90, 25)]],
    "4": [[(100, 25), (40, 120), (150, 120)], [(120, 60), (120, 180)]],
    "7": [[(40, 30), (150, 30), (80, 180)]],
}


def strip(number: str, mode: str = "RGBA") -> Image.Image:
    """White strokes on the number canvas's black (700x200), opaque like the canvas's PNG."""
    img = Image.new(mode, (700, 200), (0, 0, 0, 255) if mode == "RGBA" else 0)
    draw = ImageDraw.Draw(img)
    white = (255, 255, 255, 255) if mode == "RGBA" else 255
    for k, d in enumerate(number):
        for line in STROKES[d]:
            draw.line([(x + 20 + 160 * k, y) for x, y in line], fill=white, width=14, joint="curve")
    return img


def open_number_tab() -> AppTest:
    return open_page(PREDICT)


def draw(at: AppTest, img: Image.Image | None) -> None:
    """Send what the canvas sends: its objects (none when cleared) and its picture."""
    picture = img if img is not None else Image.new("RGBA", (700, 200), (0, 0, 0, 255))
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
    img = strip("20")
    ImageDraw.Draw(img).ellipse((330, 40, 450, 170), outline=(255, 255, 255, 255), width=14)
    ImageDraw.Draw(img).line([(340, 60), (440, 160)], fill=(255, 255, 255, 255), width=14)
    draw(at, img)  # a crossed-out ring after "20": no digit the network is sure of
    (line,) = read_lines(at)
    assert line.startswith("#### Read: 20") and len(line) == len("#### Read: 20") + 1
    assert any(re.fullmatch(r"Unsure: digit 3 could be \d\.", c.value) for c in at.caption)
    assert sum(m.value.startswith("**weakest:** ") for m in at.markdown) == 1
