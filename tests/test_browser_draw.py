"""A digit drawn with the mouse on the Predict page's square, in a window as narrow as a small
laptop's with the sidebar open: the whole square takes the mouse, the digit is read, and the
answer has room."""

import re

import pytest

from conftest import VISIBLE, draw_strokes, open_dashboard

SEVEN = [(40, 45), (245, 45), (120, 255)]  # its bar reaches the square's right side


@pytest.mark.browser
def test_a_digit_drawn_across_the_whole_square_is_read_in_a_narrow_window(browser, tmp_path):
    from playwright.sync_api import expect

    with open_dashboard(browser, {"MLP_MODELS_DIR": str(tmp_path)}, 1000, 1200) as (server, page):
        page.goto(server.url + "/predict")
        # fabric.js draws on two canvases; the upper one takes the mouse
        square = page.get_by_role("tabpanel", name="Draw").locator("canvas").last
        expect(square).to_be_visible(timeout=60_000)
        # all of the square is shown: no box around it clips it (a 280-pixel square in a
        # third of the page was cut to 148 pixels here, the bar of a 7 drawn out of sight)
        assert square.evaluate(VISIBLE) == [280, 280]
        draw_strokes(page, square, [SEVEN])
        prediction = page.get_by_role("heading", name=re.compile(r"^Prediction: 7 \("))
        expect(prediction).to_be_visible(timeout=60_000)
        # the answer has room: too narrow for it beside the square, it goes below at full
        # width (squeezed beside it, it was 196 pixels wide: the heading in three lines)
        why = page.get_by_test_id("stExpander").filter(has_text="Why this answer?")
        assert why.bounding_box()["width"] >= 400
        expect(page.get_by_test_id("stException")).to_have_count(0)
