"""Step through in a real browser: Step three times, the batch's loss changes and the
pictures are drawn; the visitor leaves and the server gives the stepping model back."""

import re
import time

import pytest
from test_browser_hardening import wait_until

from conftest import streamlit_server

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect
DRAWN = """n => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')]
    .filter(i => i.complete && i.naturalWidth > 0).length >= n"""


def stepping_bytes(url: str) -> int:
    """Bytes the server's stepping models hold, from its own metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"{url}/_stcore/metrics", timeout=10).read().decode()
    found = re.search(r'cache_type="step_through".*?\}\s+(\d+)', text)
    assert found, "no step_through metric"
    return int(found[1])


def test_three_steps_change_the_loss_draw_the_batch_and_leaving_frees_the_model(
    browser, tiny_mnist, tmp_path, report
):
    expect.set_options(timeout=60_000)
    env = {"MNIST_ROOT": str(tiny_mnist), "MLP_MODELS_DIR": str(tmp_path),
           "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "2"}  # fmt: skip
    with streamlit_server(env) as server:
        ctx = browser.new_context(viewport={"width": 1300, "height": 1000})
        try:
            page = ctx.new_page()
            page.set_default_timeout(60_000)
            page.goto(server.url + "/step")
            main = page.get_by_test_id("stMain")
            expect(main.get_by_text("Press Step")).to_be_visible()
            losses = []
            for k in (1, 2, 3):
                page.get_by_role("button", name="Step", exact=True).click()
                # drawn by the run that took step k only: never a stale element of the last run
                after = main.get_by_text(f"Loss of this batch, step {k}:")
                expect(after).to_be_visible()
                losses.append(float(re.search(r"step \d+: ([\d.]+) →", after.inner_text())[1]))
                page.wait_for_function(DRAWN, arg=16 + 1 + 4 + 4)  # batch, picture, units
            expect(page.get_by_test_id("stException")).to_have_count(0)
            held = stepping_bytes(server.url)
        finally:
            ctx.close()
        began = time.monotonic()
        wait_until(lambda: stepping_bytes(server.url) == 0)  # session expired after 2 s, swept
        freed_in = time.monotonic() - began
    report(f"batch losses {losses}; the stepping model held {held / 2**20:.1f} MB, "
           f"freed {freed_in:.0f} s after the visitor left")  # fmt: skip
    assert len(set(losses)) == 3
    assert held > 784 * 256 * 4  # at least the first layer's weights
