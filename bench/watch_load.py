"""Pages watching a run train: refresh and health-check latency, the server's CPU share.

`tests/test_watchers.py` runs 30 websocket visitors (tests/watchers.py) once. This script
runs any number (in a process of their own at a low priority, as the test does), and
checks the visitors against real pages: the same number of headless
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
from watchers import LONG_RUN, Tally, Visitor, Window, arrive_and_watch, elsewhere  # noqa: E402

# every tab's timers run on time, as in a window a visitor looks at
AWAKE = [
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


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
            executable_path=str(REPO / "tests" / "chromium_elsewhere.sh"),
            args=[*CHROMIUM_ARGS, *AWAKE],
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
        await arrive_and_watch(tallies, window, seconds)
        await browser.close()
    return tallies


def figures(name: str, pages: list[dict], window: tuple[float, float], health, cpu: str) -> str:
    lat = [s for p in pages for s in p["latencies"]]
    unanswered = sum(p["unanswered"] for p in pages)
    runs = [p["fragment_runs"] for p in pages]
    errors = sum(len(p["errors"]) for p in pages)
    asks = (len(lat) + unanswered) / len(pages) / (window[1] - window[0])
    h = health.latencies
    if not lat:
        return f"{name}: no refresh answered ({unanswered} asked; errors {errors})"
    return (
        f"{name}: refresh p50 {quantile(lat, 0.5) * 1000:.0f} ms, p90 "
        f"{quantile(lat, 0.9) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms ({len(lat)} "
        f"answered, {unanswered} not yet; {asks:.2f} asked per page per s; fragment runs per "
        f"page {min(runs)}-{max(runs)}); health p50 {quantile(h, 0.5) * 1000:.0f} ms, p99 "
        f"{quantile(h, 0.99) * 1000:.0f} ms, max {max(h) * 1000:.0f} ms ({len(h)}); {cpu}; "
        f"{sum(p['bytes'] for p in pages) / len(pages) / 1000:.0f} kB per page; errors {errors}"
    )


def visitors(url: str, pid: int, n: int, seconds: float) -> str:
    """`n` visitors in a process of their own, at a low priority (watchers.elsewhere)."""
    result, health = elsewhere(url, pid, n, seconds, start=False)
    cpu = f"server CPU {result['cpu']:.0%} (the visitors' process {result['client']:.0%})"
    window = result["began"], result["ended"]
    return figures(f"{n} visitors, {seconds:g} s", result["pages"], window, health, cpu)


async def chromium(url: str, pid: int, n: int, seconds: float) -> str:
    window = Window(url, pid)
    tallies = await tabs(url, n, window, seconds)
    pages = []
    for t in tallies:
        answered, unanswered = t.between(window.began, window.ended)
        pages.append({"latencies": answered, "unanswered": unanswered, "bytes": t.bytes_in,
                      "fragment_runs": t.fragment_runs, "errors": t.errors})  # fmt: skip
    cpu = f"server CPU {window.cpu:.0%}"
    return figures(f"{n} tabs, {seconds:g} s", pages, (window.began, window.ended),
                   window.health, cpu)  # fmt: skip


async def measure(url: str, pid: int, args) -> None:
    stop = asyncio.Event()
    starter = Visitor(url, query=LONG_RUN)
    started = asyncio.create_task(starter.visit(stop, clicks=("train_start",)))
    while not starter.tally.progress:
        await asyncio.sleep(0.1)
    if args.visitors:
        line = await asyncio.to_thread(visitors, url, pid, args.visitors, args.seconds)
        print(line, flush=True)
    if args.tabs:
        await asyncio.sleep(2)  # the visitors gone
        print(await chromium(url, pid, args.tabs, args.seconds), flush=True)
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
