"""The Train page in headless Chromium against a live server, training on the real MNIST.

Screenshots of the page during and after the run go to /tmp/shots/ for a person to look at.
"""

import re
from pathlib import Path

import pytest

from conftest import open_dashboard

SHOTS = Path("/tmp/shots")
RESULT = re.compile(r"^Test accuracy: (\d\.\d{4})$")


@pytest.mark.browser
@pytest.mark.mnist
def test_a_run_trains_live_survives_leaving_the_page_and_ends_with_a_model(
    browser, mnist_root, tmp_path
):
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    env = {"MNIST_ROOT": str(mnist_root), "MLP_MODELS_DIR": str(tmp_path)}
    with open_dashboard(browser, env, 1400, 2000, 60_000) as (server, page):
        # entered at the root, as a visitor does (deep links: test_browser_pages.py)
        main = page.get_by_test_id("stMain")
        nav = page.get_by_test_id("stSidebarNav")
        nav.get_by_role("link", name="Train", exact=True).click()
        expect(page).to_have_url(re.compile(r"/train(\?|$)"))
        # one epoch of the shipped recipe in batches of 16: 3,750 steps, long enough to watch
        page.get_by_role("spinbutton", name="Epochs").fill("1")
        page.get_by_role("spinbutton", name="Batch size").fill("16")
        page.get_by_role("button", name="Start training").click()

        expect(main.get_by_text("256-64 adam lr0.002 bs16 1ep").first).to_be_visible()
        expect(main.get_by_test_id("stProgress").get_by_text("Epoch 1/1")).to_be_visible()
        expect(main.get_by_test_id("stVegaLiteChart").first).to_be_visible()
        batches = main.get_by_test_id("stMetricValue").first  # e.g. "123 / 3,750"
        before = batches.inner_text()
        expect(batches).not_to_have_text(before)  # the page redraws itself as it trains
        page.screenshot(path=SHOTS / "train_during.png", full_page=True)

        nav.get_by_role("link", name="Overview", exact=True).click()
        expect(main.get_by_text("Teach a network to read handwritten digits")).to_be_visible()
        nav.get_by_role("link", name="Train", exact=True).click()

        result = main.get_by_text(RESULT)
        expect(result).to_be_visible(timeout=180_000)
        accuracy = float(RESULT.match(result.inner_text()).group(1))
        assert accuracy >= 0.90
        saved = list(tmp_path.glob("*.pt"))
        assert len(saved) == 1 and f"acc{accuracy:.4f}" in saved[0].name
        expect(main.get_by_text(saved[0].name)).to_be_visible()
        expect(main.get_by_role("button", name="Download the model file")).to_be_visible()
        expect(main.get_by_role("button", name="Stop training")).to_have_count(0)
        # loss, accuracy, and the weight and gradient norms of each layer
        expect(main.get_by_test_id("stVegaLiteChart")).to_have_count(4)
        page.screenshot(path=SHOTS / "train_after.png", full_page=True)

        main.get_by_role("button", name="Use as the active model").click()
        expect(main.get_by_text("This is the active model")).to_be_visible()
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text(saved[0].stem).first).to_be_visible()
