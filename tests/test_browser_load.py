"""A live server under races, load and long use, driven by headless Chromium.

Two tabs pressing Start at once queue two runs, one training; another browser sees them but
cannot stop them; eight users upload pictures while a run trains (in its worker process);
one tab uploads and classifies a 2.5 MB picture 40 times; the server's own limits (upload
size, XSRF) hold.
Memory is the server process's resident set, read from /proc/<pid>/status. The figures are
reported in pytest's summary ("measured figures") and repeated in the assertion messages.
"""

import http.client
import io
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from conftest import HealthWatch, png, quantile, rss_mb, streamlit_server
from digit_pictures import find_fonts
from mlp_core import load_checkpoint
from mlp_core.metrics import predict_probs
from mlp_core.vision import preprocess, surer
from ui.server import upload_limits

MODEL = Path(__file__).resolve().parents[1] / "models" / "default.pt"
UPLOADER = '[data-testid="stFileUploaderDropzoneInput"][multiple]'  # the Upload tab's
VIEWPORT = {"width": 1000, "height": 800}
# True once the Predict page shows exactly n answers (polled by the page on each frame)
ANSWERS = """n => [...document.querySelectorAll('[data-testid="stMain"] h4')]
    .filter(h => h.innerText.startsWith('Prediction:')).length === n"""
# True once the Predict page shows exactly one answer, and it is `digit`
ONE_ANSWER = """digit => {
    const found = [...document.querySelectorAll('[data-testid="stMain"] h4')]
        .filter(h => h.innerText.startsWith('Prediction:'));
    return found.length === 1 && found[0].innerText.startsWith(`Prediction: ${digit} `);
}"""
# Click the uploader's remove button of one file (no actionability checks: speed)
REMOVE = "name => document.querySelector(`button[aria-label='Remove ${name}']`).click()"

pytestmark = pytest.mark.browser


def slowest(health: HealthWatch, phases: dict[str, float], n: int = 5) -> str:
    """The n slowest health checks, each with the phase of the test it fell in."""
    worst = sorted(zip(health.latencies, health.when, strict=True), reverse=True)[:n]
    out = []
    for latency, at in worst:
        phase = max((p for p in phases.items() if p[1] <= at), key=lambda p: p[1], default=None)
        where = f"{phase[0]} +{at - phase[1]:.1f} s" if phase else "before"
        out.append(f"{latency * 1000:.0f} ms ({where})")
    return ", ".join(out)


def rendered_digits(font_index: int) -> list[tuple[str, bytes]]:
    """Ten clean pictures, 0 to 9: dark print on white paper."""
    font = ImageFont.truetype(str(find_fonts()[font_index]), 80)
    pictures = []
    for d in range(10):
        img = Image.new("L", (100, 120), 255)
        ImageDraw.Draw(img).text((50, 60), str(d), fill=0, font=font, anchor="mm")
        pictures.append((f"digit_{d}.png", png(img)))
    return pictures


def as_files(pictures: list[tuple[str, bytes]]) -> list[dict]:
    return [{"name": n, "mimeType": "image/png", "buffer": b} for n, b in pictures]


def open_predict(page, url: str) -> None:
    page.goto(f"{url}/predict")
    page.get_by_role("tab", name="Upload").click()
    page.locator(UPLOADER).wait_for(state="attached")


def answers(page) -> dict[str, int]:
    """file name -> the digit its 'Prediction:' line gives, read from the page's text."""
    text = page.get_by_test_id("stMain").inner_text()
    return {
        name: int(d) for name, d in re.findall(r"(digit_\d\.png)\s.*?Prediction: (\d)", text, re.S)
    }


@pytest.fixture(scope="module")
def server(tiny_mnist, tmp_path_factory):
    """One live dashboard (tiny MNIST, its own models folder) for the tests that share it."""
    env = {"MNIST_ROOT": str(tiny_mnist), "MLP_MODELS_DIR": str(tmp_path_factory.mktemp("m"))}
    with streamlit_server(env) as proc:
        yield proc


def test_two_tabs_pressing_start_at_once_queue_two_runs_that_only_their_browser_can_stop(
    browser, server, report
):
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT)
    tabs = [context.new_page() for _ in range(2)]  # two tabs of one browser: one owner
    other_browser = browser.new_context(viewport=VIEWPORT)  # its own cookies: another owner
    try:
        for tab in tabs:
            tab.set_default_timeout(30_000)
            tab.goto(f"{server.url}/train")
            tab.get_by_role("textbox", name="Hidden layer sizes").fill("32")
            tab.get_by_role("spinbutton", name="Epochs").fill("500")  # a run that lasts
            tab.get_by_role("spinbutton", name="Batch size").fill("16")
        # both clicks fire at one instant of the browser's clock, a few ms apart at most
        at = tabs[0].evaluate("Date.now()") + 300
        for tab in tabs:
            tab.evaluate(
                """at => setTimeout(() => [...document.querySelectorAll('button')]
                    .find(b => b.innerText.includes('Start training')).click(), at - Date.now())""",
                at,
            )
        headings = [tab.get_by_role("heading", name=re.compile(r"^Run \d+: ")) for tab in tabs]
        for tab in tabs:  # both tabs follow the run training now, and show the other waiting
            expect(tab.get_by_role("button", name="Stop training")).to_be_visible(timeout=60_000)
            # the queue's cell (the toast that said so at Start carries the same words)
            waiting = tab.get_by_role("gridcell", include_hidden=True).filter(
                has_text=re.compile(r"waiting: number 1 in line on cpu")
            )
            expect(waiting).to_be_attached(timeout=30_000)
        runs = [heading.all_inner_texts() for heading in headings]
        report(f"two tabs pressing Start at once: runs shown {runs}, one training, one waiting")
        assert runs[0] == runs[1] and len(runs[0]) == 1, runs  # one and the same run
        queue = tabs[0].locator('[role="grid"]').first  # "Training now on this server"
        expect(queue).to_have_attribute("aria-rowcount", "3")  # header, training, waiting
        # another browser sees both runs, and is offered neither Stop nor Cancel
        watcher = other_browser.new_page()
        watcher.set_default_timeout(30_000)
        watcher.goto(f"{server.url}/train")
        expect(watcher.get_by_role("heading", name=runs[0][0])).to_be_visible()
        expect(watcher.get_by_text("another browser").first).to_be_attached(timeout=30_000)
        expect(
            watcher.get_by_role("button", name=re.compile("Stop training|Cancel"))
        ).to_have_count(0)
        tabs[1].get_by_role("button", name=re.compile(r"^Cancel run \d+")).click()
        expect(tabs[1].get_by_role("button", name=re.compile(r"^Cancel run"))).to_have_count(0)
        tabs[0].get_by_role("button", name="Stop training").click()
        ended = tabs[0].get_by_text(re.compile(r"^(Stopped|Test accuracy: \d)"))
        expect(ended.first).to_be_visible()
    finally:
        context.close()
        other_browser.close()


def test_the_server_refuses_uploads_without_its_xsrf_token_or_over_10_mb(browser, server):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        open_predict(page, server.url)
        puts = []
        page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
        page.locator(UPLOADER).set_input_files(files=as_files(rendered_digits(0)[:1]))
        page.wait_for_function(ANSWERS, arg=1, polling="raf")
        (upload_url,) = puts  # /_stcore/upload_file/<this live session>/<file id>
        cookies = {c["name"]: c["value"] for c in context.cookies()}
        host, port = urllib.parse.urlsplit(server.url).netloc.split(":")

        def put(headers: dict, body: bytes = b"", path: str | None = None) -> int:
            """Send a PUT's headers (and body) to the upload URL; the server's status code."""
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                conn.putrequest("PUT", path or urllib.parse.urlsplit(upload_url).path)
                cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
                for k, v in {"Cookie": cookie, "Content-Length": len(body), **headers}.items():
                    conn.putheader(k, str(v))
                conn.endheaders(body)
                return conn.getresponse().status
            finally:
                conn.close()

        form = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        form += rendered_digits(0)[1][1] + b"\r\n--b--\r\n"
        multipart = {"Content-Type": "multipart/form-data; boundary=b"}
        token = {"X-Xsrftoken": cookies["_streamlit_xsrf"], **multipart}
        assert put(multipart, form) == 403  # without this page's XSRF token: refused
        assert put(token, form) == 204  # the same upload with it is taken
        # 10 MB + 1 byte announced: refused from the header, before any of the body is sent
        assert put({**token, "Content-Length": 10 * 1024 * 1024 + 1}) == 413
        # files that no widget names, as a forging client sends them: counted at the endpoint
        session = urllib.parse.urlsplit(upload_url).path.rsplit("/", 1)[0]
        sent = [put(token, form, f"{session}/forged-{i}") for i in range(50)]
        kept = sent.count(204)  # taken until the session holds its most, then refused
        assert kept <= upload_limits()[0] and sent == [204] * kept + [413] * (50 - kept), sent
    finally:
        context.close()


def large_seven() -> bytes:
    """A 7 on a 1400x1400 photo-like page with grain: a 2.5 MB PNG (grain does not compress),
    so a cycle that kept its upload would leak megabytes, not kilobytes."""
    _, small = rendered_digits(0)[7]
    page = Image.open(io.BytesIO(small)).convert("RGB").resize((1400, 1400), Image.BILINEAR)
    grain = np.random.default_rng(0).integers(-6, 7, (1400, 1400, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.asarray(page) + grain, 0, 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_forty_large_uploads_in_one_tab_keep_memory_bounded(browser, server, tmp_path, report):
    picture = large_seven()
    # on disk, handed to Chromium by path (Playwright sends a buffer through its own pipe,
    # slowly); one name per cycle, all links to the same file
    (tmp_path / "picture.png").write_bytes(picture)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    uploader = page.locator(UPLOADER)

    def cycle(i: int) -> None:
        """Upload a picture, wait for its answer, remove it and wait for the answer to go."""
        name = f"cycle_{i}.png"
        os.link(tmp_path / "picture.png", tmp_path / name)
        uploader.set_input_files(tmp_path / name)
        page.wait_for_function(ONE_ANSWER, arg=7, polling="raf")  # one answer, a 7
        page.evaluate(REMOVE, name)
        page.wait_for_function(ANSWERS, arg=0, polling="raf")

    try:
        open_predict(page, server.url)
        for i in range(5):  # warm-up: imports, caches, the browser's first renders
            cycle(i)
        before, began = rss_mb(server.pid), time.monotonic()
        for i in range(5, 45):
            cycle(i)
        seconds, after = time.monotonic() - began, rss_mb(server.pid)
    finally:
        context.close()
    uploaded = 40 * len(picture) / 2**20
    figures = (
        f"40 upload-and-classify cycles of a {len(picture) / 2**20:.1f} MB picture in "
        f"{seconds:.0f} s ({seconds / 40 * 1000:.0f} ms each); server memory {before:.0f} MB "
        f"-> {after:.0f} MB ({after - before:+.0f} MB of the {uploaded:.0f} MB uploaded)"
    )
    report(figures)
    assert after - before < uploaded / 2, figures  # kept uploads (or half of each) would show


@pytest.mark.mnist
@pytest.mark.load
def test_eight_users_upload_while_a_run_trains(visitors_browser, mnist_root, tmp_path, report):
    browser = visitors_browser
    from playwright.sync_api import expect

    model = load_checkpoint(MODEL).model
    users = [rendered_digits(u % 3) for u in range(8)]  # three fonts among eight users
    for pictures in users:  # clean prints: the shipped model reads every one right
        preps = surer(model, [preprocess(b) for _, b in pictures])  # as the page reads them
        digits = [int(predict_probs(model, p.tensor).argmax()) for p in preps]
        assert digits == list(range(10))

    env = {"MNIST_ROOT": str(mnist_root), "MLP_MODELS_DIR": str(tmp_path)}
    with streamlit_server(env) as server:
        health = HealthWatch(server.url).start()
        started = time.monotonic()
        contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(9)]
        pages = [c.new_page() for c in contexts]
        for page in pages:
            page.set_default_timeout(120_000)
        trainer, *users_pages = pages
        try:
            # warm-up: one user, one picture, so that imports and caches are loaded
            open_predict(users_pages[0], server.url)
            users_pages[0].locator(UPLOADER).set_input_files(files=as_files(users[0][:1]))
            users_pages[0].wait_for_function(ANSWERS, arg=1, polling="raf")
            first = rss_mb(server.pid)
            phases = {"warm-up": started}
            # and the Train page: its first visit reads MNIST into memory, once per server
            trainer.goto(f"{server.url}/train")
            expect(trainer.get_by_text("No run on this server yet")).to_be_visible()
            before = rss_mb(server.pid)

            phases["users arriving"] = time.monotonic()
            for page in users_pages[1:]:  # the other seven users arrive, all at once
                page.goto(f"{server.url}/predict", wait_until="commit")
            for page in users_pages:
                page.get_by_role("tab", name="Upload").click()

            trainer.get_by_role("textbox", name="Hidden layer sizes").fill("64")
            trainer.get_by_role("spinbutton", name="Batch size").fill("64")
            trainer.get_by_role("spinbutton", name="Epochs").fill("6")  # trains past the answers
            phases["training starts"] = time.monotonic()
            trainer.get_by_role("button", name="Start training").click()
            progress = trainer.get_by_test_id("stMain").get_by_test_id("stProgress")
            expect(progress).to_be_visible(timeout=60_000)  # the worker process starts first
            began = phases["uploads"] = time.monotonic()
            for page, pictures in zip(users_pages, users, strict=True):
                page.locator(UPLOADER).set_input_files(files=as_files(pictures))
            sent_while_training = progress.count() == 1
            got = []
            for page in users_pages:  # the first user now has 11: its warm-up picture too
                page.wait_for_function(ANSWERS, arg=11 if page is users_pages[0] else 10)
                got.append(answers(page))
            answered_while_training = progress.count() == 1
            phases["answers shown"] = time.monotonic()
            answered = time.monotonic() - began
            result = trainer.get_by_text(re.compile(r"^Test accuracy: \d\.\d{4}$"))
            expect(result).to_be_visible(timeout=180_000)
            trained = time.monotonic() - began
            accuracy = float(result.inner_text().split()[-1])
            after = rss_mb(server.pid)
        finally:
            for context in contexts:
                context.close()
            health.stop()
    expected = {f"digit_{d}.png": d for d in range(10)}
    n_right = sum(g == expected for g in got)
    figures = (
        f"8 users x 10 pictures: {n_right}/8 users got all 10 answers right, in {answered:.1f} s; "
        f"the run ended at {trained:.1f} s (test accuracy {accuracy:.4f}; training when the "
        f"uploads were sent: {sent_while_training}, when all were answered: "
        f"{answered_while_training}); server memory {first:.0f} MB after "
        f"one upload, {before:.0f} MB after the Train page's first visit, {after:.0f} MB "
        f"after the test ({after - before:+.0f} MB); health: {len(health.latencies)} checks, "
        f"p50 {quantile(health.latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {quantile(health.latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(health.latencies) * 1000:.0f} ms, {len(health.failures)} failures "
        f"(browsers' session at nice {os.environ.get('LOAD_BROWSER_NICE', '10')})"
    )
    report(figures)
    report(f"slowest health checks: {slowest(health, phases)}")
    assert got == [expected] * 8, f"{got}; {figures}"
    assert accuracy > 0.9 and sent_while_training, figures
    assert not health.failures and max(health.latencies) < 5, f"{health.failures[:3]}; {figures}"
    assert after - before < 200, figures
