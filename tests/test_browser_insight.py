"""The first layer's templates change on screen while a run trains (headless Chromium, real MNIST).

A screenshot of the page during the run goes to /tmp/shots/ for a person to look at.
"""

import re
import time
from pathlib import Path

import pytest

from conftest import open_dashboard

SHOTS = Path("/tmp/shots")
WAIT = 30_000  # ms: a busy machine (other tests, the run itself) slows every redraw
CAPTION = re.compile(r"^Run \d+: the first 32 of 256 units, after batch ([\d,]+) of 3,750$")


def batch(caption: str) -> int:
    """The batch count in the grid's caption."""
    return int(CAPTION.match(caption)[1].replace(",", ""))


@pytest.mark.browser
@pytest.mark.mnist
def test_the_weight_grid_changes_during_a_run(browser, mnist_root, tmp_path):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    env = {"MNIST_ROOT": str(mnist_root), "MLP_MODELS_DIR": str(tmp_path)}
    with open_dashboard(browser, env, 1400, 2400, 30_000) as (server, page):
        main = page.get_by_test_id("stMain")
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").click()
        expect(page).to_have_url(re.compile(r"/train(\?|$)"))
        # one epoch in batches of 16: 3,750 steps, the templates refresh every 50
        page.get_by_role("spinbutton", name="Epochs").fill("1")
        page.get_by_role("spinbutton", name="Batch size").fill("16")
        page.get_by_role("button", name="Start training").click()

        expect(main.get_by_text("What the first layer is learning")).to_be_visible(timeout=WAIT)
        grid = main.get_by_test_id("stImage").filter(has_text=CAPTION)
        caption = grid.get_by_test_id("stImageCaption")
        expect(caption).to_have_text(CAPTION, timeout=WAIT)  # some batches in, not the start
        first_caption, first_src = (
            caption.inner_text(),
            grid.locator("img").get_attribute("src"),
        )
        first_pixels = grid.locator("img").screenshot()

        expect(caption).not_to_have_text(first_caption, timeout=WAIT)  # redrawn as it trains
        expect(grid.locator("img")).not_to_have_attribute("src", first_src, timeout=WAIT)
        deadline = time.monotonic() + 20  # the new picture may take a moment to load
        while grid.locator("img").screenshot() == first_pixels:
            assert time.monotonic() < deadline, "the grid's pixels never changed"
            time.sleep(0.2)
        assert batch(caption.inner_text()) > batch(first_caption)
        expect(main.get_by_test_id("stProgress").get_by_text("Epoch 1/1")).to_be_visible()
        page.screenshot(path=SHOTS / "insight_browser_grid.png", full_page=True)

        main.get_by_role("button", name="Stop training").click()
        expect(main.get_by_role("button", name="Stop training")).to_have_count(0, timeout=WAIT)
