"""The hardening seen from a real browser: no request leaves the server, typed and named text
stays text, and the uploads of browsers that left are given back."""

import io
import re
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image
from test_browser_load import UPLOADER, rss_mb

from conftest import streamlit_server

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect
# pictures answered on the Predict page: a "Prediction:" heading or an error naming the file
ANSWERED = """n => [...document.querySelectorAll('[data-testid=stMain] h4, [data-testid=stAlert]')]
    .filter(e => /Prediction:|\\.png/.test(e.innerText)).length >= n"""
MARKUP = "**bold** :red[red] ![x](http://evil.example/a.png) www.evil.example"


def test_no_request_leaves_the_server_and_markup_stays_text(browser, tiny_mnist, tmp_path):
    expect.set_options(timeout=60_000)
    env = {"MNIST_ROOT": str(tiny_mnist), "MLP_MODELS_DIR": str(tmp_path)}
    with streamlit_server(env) as server:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(60_000)
        elsewhere = []  # every request for anything but this server's own address
        page.on(
            "request",
            lambda r: r.url.startswith((server.url, "data:", "blob:")) or elsewhere.append(r.url),
        )
        try:
            for path in ("/", "/samples", "/predict", "/train"):
                page.goto(server.url + path)
                expect(page.get_by_test_id("stSidebar").get_by_text("Active model")).to_be_visible()
                page.wait_for_load_state("networkidle")
            main = page.get_by_test_id("stMain")
            page.get_by_role("textbox", name="Hidden layer sizes").fill(MARKUP)
            page.get_by_role("button", name="Start training").click()
            alert = main.get_by_test_id("stAlert").filter(has_text="whole numbers")
            expect(alert).to_contain_text("**bold** :red[red] ![x](http:")
            assert alert.locator("strong, img, a, span[class*=color]").count() == 0

            page.goto(server.url + "/predict")
            page.get_by_role("tab", name="Upload").click()
            buf = io.BytesIO()
            Image.new("L", (40, 40), 255).save(buf, "PNG")
            name = "www.evil.example.png"
            page.locator(UPLOADER).set_input_files(
                files=[{"name": name, "mimeType": "image/png", "buffer": buf.getvalue()}]
            )
            expect(main.get_by_test_id("stAlert").filter(has_text="evil")).to_be_visible()
            assert main.locator("a[href*='evil']").count() == 0  # not made into a link
            page.wait_for_load_state("networkidle")
        finally:
            page.close()
    assert elsewhere == [], elsewhere


def broken_png(seed: int, size: int = 2_400_000) -> bytes:
    """A PNG signature then random bytes: refused at once, yet held in memory as any upload."""
    return b"\x89PNG\r\n\x1a\n" + np.random.default_rng(seed).bytes(size)


def uploads_held(url: str) -> int:
    """Bytes of uploaded files the server holds, from its own metrics (0 when none: Streamlit
    leaves the line out; each visit below first checks the line is there while it uploads,
    so a metric renamed by an upgrade fails the test instead of reading as "all freed")."""
    text = urllib.request.urlopen(f"{url}/_stcore/metrics", timeout=10).read().decode()
    found = re.search(r'cache_type="UploadedFileManager".*?\}\s+(\d+)', text)
    return int(found[1]) if found else 0


def test_the_uploads_of_browsers_that_left_are_given_back(browser, tmp_path, report):
    expect.set_options(timeout=60_000)
    env = {"MLP_MODELS_DIR": str(tmp_path), "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": "2"}
    # on disk, handed to Chromium by path: Playwright sends a buffer through its own pipe
    # (base64, about 2 MB/s here), a path it does not
    files = []
    for i in range(8):
        files.append(tmp_path / f"n{i}.png")
        files[-1].write_bytes(broken_png(i, 5_000_000))
    size = sum(f.stat().st_size for f in files)
    with streamlit_server(env) as server:
        contexts = []

        def visit() -> None:
            ctx = browser.new_context()
            contexts.append(ctx)
            page = ctx.new_page()
            page.goto(server.url + "/predict")
            page.get_by_role("tab", name="Upload").click()
            page.locator(UPLOADER).set_input_files(files=files)
            page.wait_for_function(ANSWERED, arg=len(files), timeout=120_000)

        def leave() -> None:
            for ctx in contexts:
                ctx.close()
            contexts.clear()

        try:
            # two visitors in turn, each uploading 8 pictures (38 MB) and leaving; the first
            # also grows the server once (imports, caches), so memory is measured on the second
            visit()
            leave()
            wait_until(lambda: uploads_held(server.url) == 0)
            before = rss_mb(server.pid)
            visit()
            held = rss_mb(server.pid)
            wait_until(lambda: uploads_held(server.url) >= size)  # all held, as read
            held_bytes = uploads_held(server.url)
            leave()
            began = time.monotonic()
            wait_until(lambda: uploads_held(server.url) == 0)  # expired after 2 s, swept
            freed_in = time.monotonic() - began
            for _ in range(15):  # the memory follows within seconds
                time.sleep(1)
                after = rss_mb(server.pid)
                if after - before < 0.3 * (held - before):
                    break
        finally:
            leave()
    figures = (
        f"2 visitors in turn uploaded {size / 2**20:.0f} MB each (server held "
        f"{held_bytes / 2**20:.0f} MB) and left: uploads freed {freed_in:.0f} s after the "
        f"second left; server memory {before:.0f} MB -> {held:.0f} MB -> {after:.0f} MB after"
    )
    report(figures)
    assert held_bytes >= size, figures  # the uploads really were held
    assert held - before > size / 2**20, figures
    assert after - before < 0.3 * (held - before), figures  # and given back to the system


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
