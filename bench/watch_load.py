"""Pages watching a run train: refresh and health-check latency, the server's CPU share.

`tests/test_watchers.py` runs 30 websocket visitors (tests/watchers.py) once. This script
runs any number, and checks the visitors against real pages: the same number of headless
Chromium tabs, whose websocket frames are read the same way (`Tally`), one phase after the
other on the same server and run; each phase is measured once all its pages have drawn
the whole page (arriving is not watching). A script, not a test (the figures depend on the machine):

    .venv/bin/python bench/watch_load.py --visitors 30            # 30 visitors
    .venv/bin/python bench/watch_load.py --visitors 4 --tabs 4    # 4 visitors, then 4 tabs

The run trains on tiny synthetic MNIST (tests/conftest.py), in its worker process. Chromium
runs at the worker's low priority (tests/chromium_elsewhere.sh), as in the load test.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from conftest import CHROMIUM_ARGS, make_tiny_mnist, quantile, streamlit_server  # noqa: E402
from watchers import Tally, Visitor, Window, arrive_and_watch, crowd  # noqa: E402

LONG_RUN = "hidden=32&batch_size=16&epochs=1000"


async def tabs(url: str, n: int, window: Window, seconds: float) -> list[Tally]:
    """`n` Chromium tabs (one browser context each) open the Train page; once all have
    drawn it, `window` measures for `seconds`. Their websocket frames, tallied as the
    visitors' are."""
    from playwright.async_api import async_playwright
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    tallies = [Tally() for _ in range(n)]

    def follow(tally: Tally):
        def on_socket(ws):
            def sent(payload):
                if isinstance(payload, bytes):
                    tally.sent(payload, time.monotonic())

            def received(payload):
                if isinstance(payload, bytes):
                    tally.received(ForwardMsg.FromString(payload), len(payload), time.monotonic())

            ws.on("framesent", sent)
            ws.on("framereceived", received)

        return on_socket

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=str(REPO / "tests" / "chromium_elsewhere.sh"), args=CHROMIUM_ARGS
        )
        contexts = [await browser.new_context(viewport={"width": 1400, "height": 1600})]
        contexts += [await browser.new_context(viewport={"width": 1400, "height": 1600})
                     for _ in range(n - 1)]  # fmt: skip
        pages = []
        for context, tally in zip(contexts, tallies, strict=True):
            page = await context.new_page()
            page.on("websocket", follow(tally))
            await page.goto(f"{url}/train", wait_until="commit")
            pages.append(page)
        await arrive_and_watch([{"tally": t} for t in tallies], window, seconds)
        await browser.close()
    return tallies


def figures(name: str, tallies: list[Tally], window: Window) -> str:
    measured = [t.between(window.began, window.ended) for t in tallies]
    lat = [s for answered, _ in measured for s in answered]
    unanswered = sum(n for _, n in measured)
    runs = [t.fragment_runs for t in tallies]
    errors = sum(len(t.errors) for t in tallies)
    h = window.health.latencies
    if not lat:
        return f"{name}: no refresh answered ({unanswered} asked; errors {errors})"
    return (
        f"{name}: refresh p50 {quantile(lat, 0.5) * 1000:.0f} ms, p90 "
        f"{quantile(lat, 0.9) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms ({len(lat)} "
        f"answered, {unanswered} not yet; fragment runs per page {min(runs)}-{max(runs)}); "
        f"health p50 {quantile(h, 0.5) * 1000:.0f} ms, p99 {quantile(h, 0.99) * 1000:.0f} ms, "
        f"max {max(h) * 1000:.0f} ms; server CPU {window.cpu:.0%}; "
        f"{sum(t.bytes_in for t in tallies) / len(tallies) / 1000:.0f} kB per page; "
        f"errors {errors}"
    )


async def measure(url: str, pid: int, args) -> None:
    stop = asyncio.Event()
    starter = Visitor(url, query=LONG_RUN)
    started = asyncio.create_task(starter.visit(stop, clicks=("train_start",)))
    while not starter.tally.progress:
        await asyncio.sleep(0.1)
    phases = [("visitors", args.visitors, crowd), ("tabs", args.tabs, tabs)]
    for name, n, how in phases:
        if not n:
            continue
        await asyncio.sleep(2)  # the last phase's pages gone
        window = Window(url, pid)
        tallies = await how(url, n, window, args.seconds)
        print(figures(f"{n} {name}, {args.seconds:g} s", tallies, window), flush=True)
    stop.set()
    await started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visitors", type=int, default=30, help="websocket visitors (default 30)")
    ap.add_argument("--tabs", type=int, default=0, help="Chromium tabs after them (default 0)")
    ap.add_argument("--seconds", type=float, default=15, help="each phase (default 15)")
    args = ap.parse_args()
    root = make_tiny_mnist(Path(tempfile.mkdtemp(prefix="tiny-mnist-")))
    env = {"MNIST_ROOT": str(root), "MLP_MODELS_DIR": tempfile.mkdtemp(prefix="models-")}
    with streamlit_server(env) as server:
        asyncio.run(measure(server.url, server.pid, args))


if __name__ == "__main__":
    main()
