"""Measure what two visitors stepping through epochs cost the server: the health check's
latency and a training run's pace, without them and with them. A script, not a test (the
figures depend on the machine): `MNIST_ROOT=... .venv/bin/python tests/measure_step_load.py`.

The run (64 hidden units, batch 64, 3 epochs) trains in the worker process; its pace is read
from the run history (samples seen / seconds trained). The visitors' Chromium runs at the
worker's priority (chromium_elsewhere.sh), as in the load test.
"""

import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from conftest import CHROMIUM_ARGS, REPO, HealthWatch, quantile, streamlit_server  # noqa: E402

RESULT = re.compile(r"^Test accuracy: \d\.\d{4}$")
# the steps a Step through page says it has taken, read in the page (-1 before any)
STEPS_JS = """() => { const m = document.body.innerText.match(/([\\d,]+) steps? taken/);
    return m ? Number(m[1].replaceAll(',', '')) : -1; }"""
TAKEN_MORE = f"before => ({STEPS_JS})() > before"


def taken(page) -> int:
    return page.evaluate(STEPS_JS)


def start(page, url: str, epochs: int = 3) -> None:
    """Start a run of 64 hidden units, batch 64, on the Train page."""
    page.goto(f"{url}/train")
    page.get_by_role("textbox", name="Hidden layer sizes").fill("64")
    page.get_by_role("spinbutton", name="Batch size").fill("64")
    page.get_by_role("spinbutton", name="Epochs").fill(str(epochs))
    page.get_by_role("button", name="Start training").click()


def train_once(page, url: str, epochs: int = 3) -> None:
    start(page, url, epochs)
    expect(page.get_by_text(RESULT)).to_be_visible(timeout=600_000)


def pace(history: Path, run: int) -> tuple[float, float]:
    """(seconds, samples per second) of the `run`-th run (from 1), once the history has it
    finished (written a moment after the page shows the result)."""
    deadline = time.monotonic() + 60
    while True:
        with sqlite3.connect(history) as db:
            row = db.execute(
                "SELECT elapsed, seen FROM runs WHERE id = ? AND status = 'finished'", (run,)
            ).fetchone()
        if row is not None:
            return row[0], row[1] / row[0]
        assert time.monotonic() < deadline, f"run {run} not written as finished"
        time.sleep(0.2)


def health_line(watch: HealthWatch) -> str:
    lat = watch.latencies
    return (
        f"{len(lat)} checks, p50 {quantile(lat, 0.5) * 1000:.0f} ms, p99 "
        f"{quantile(lat, 0.99) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms, "
        f"{len(watch.failures)} failures"
    )


def main() -> None:
    expect.set_options(timeout=120_000)
    history = Path(tempfile.mkdtemp(prefix="history-")) / "runs.sqlite"
    env = {"MLP_MODELS_DIR": tempfile.mkdtemp(prefix="models-"), "MLP_HISTORY": str(history)}
    with streamlit_server(env) as server, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(REPO / "tests" / "chromium_elsewhere.sh"), args=CHROMIUM_ARGS
        )
        trainer = browser.new_context().new_page()
        trainer.set_default_timeout(180_000)
        train_once(trainer, server.url, epochs=1)  # warm-up: the worker starts, MNIST is read
        with HealthWatch(server.url) as alone:
            train_once(trainer, server.url)
        seconds_alone, pace_alone = pace(history, 2)

        visitors = [browser.new_context().new_page() for _ in range(2)]
        for v in visitors:
            v.set_default_timeout(180_000)
            v.goto(f"{server.url}/step")
            expect(v.get_by_text("Press Step")).to_be_visible()
        with HealthWatch(server.url) as stepping:
            began = time.monotonic()
            start(trainer, server.url)
            expect(trainer.get_by_test_id("stMain").get_by_test_id("stProgress")).to_be_visible()
            refused = 0
            for v in visitors:  # One epoch is off while the run trains
                v.get_by_role("button", name="One epoch").click()
                expect(v.get_by_text("One epoch is off until the run ends")).to_be_visible()
                refused += 1
            clicks = 0
            while not trainer.get_by_text(RESULT).count():  # the visitors go on with ×10
                for v in visitors:
                    before = taken(v)
                    v.get_by_role("button", name="×10").click()
                    v.wait_for_function(TAKEN_MORE, arg=before, timeout=120_000)
                    clicks += 1
            stepped_for = time.monotonic() - began
            steps = [taken(v) for v in visitors]
        seconds_with, pace_with = pace(history, 3)
        browser.close()
    alone_health = health_line(alone)
    print(f"run alone: {seconds_alone:.1f} s, {pace_alone:,.0f} samples/s; health {alone_health}")
    print(
        f"run while 2 visitors stepped (One epoch refused {refused} times, x10 {clicks} times "
        f"in all; {steps} steps taken in {stepped_for:.0f} s): {seconds_with:.1f} s, "
        f"{pace_with:,.0f} samples/s; "
        f"health {health_line(stepping)}"
    )


if __name__ == "__main__":
    main()
