"""A number drawn with the mouse on the Predict page's "A number" strip, as a visitor draws it,
in a window as narrow as a small laptop's with the sidebar open."""

import re

import pytest

from conftest import VISIBLE, draw_strokes, open_dashboard

# Strokes on the 540x180 strip, digit by digit, close together: "2", "5" with its flag drawn
# as a stroke of its own that does not touch the body, "7", and a "1" at the strip's right end.
STROKES = [
    [(40, 60), (75, 35), (120, 45), (125, 85), (40, 165), (135, 165)],  # 2
    [(160, 45), (225, 45)],  # 5: the flag, apart
    [(163, 62), (160, 100), (200, 92), (228, 118), (225, 150), (195, 168), (160, 158)],  # 5
    [(255, 40), (345, 40), (290, 170)],  # 7
    [(505, 45), (520, 30), (522, 170)],  # 1
]


@pytest.mark.browser
def test_a_number_drawn_with_the_mouse_is_read(browser, tmp_path):
    from playwright.sync_api import expect

    with open_dashboard(browser, {"MLP_MODELS_DIR": str(tmp_path)}, 1000, 1100) as (server, page):
        page.goto(server.url + "/predict")
        page.get_by_role("tab", name="A number").click()
        # fabric.js draws on two canvases; the upper one takes the mouse
        strip = page.get_by_role("tabpanel", name="A number").locator("canvas").last
        expect(strip).to_be_visible(timeout=60_000)
        # all of the strip is in view (700 pixels wide, its right 160 were cut off here)
        assert strip.evaluate(VISIBLE) == [540, 180]
        draw_strokes(page, strip, STROKES)
        # read right; a close second reading may be named beside it, "(or 25571?)"
        heading = page.get_by_role("heading", name=re.compile(r"^Read: 2571( \(or \d+\?\))?$"))
        expect(heading).to_be_visible(timeout=60_000)
        expect(page.get_by_test_id("stException")).to_have_count(0)
