"""Pages watching a run train: refresh and health-check latency, the server's CPU share.

`tests/test_watchers.py` runs 30 websocket visitors (tests/watchers.py) once. This script
runs any number, and checks the visitors against real pages: the same number of headless
Chromium tabs, whose websocket frames are read the same way (`Tally`), one phase after the
other on the same server and run. A script, not a test (the figures depend on the machine):

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

from conftest import (  # noqa: E402
    CHROMIUM_ARGS,
    HealthWatch,
    make_tiny_mnist,
    quantile,
    streamlit_server,
)
from watchers import Tally, Visitor, cpu_seconds, crowd  # noqa: E402

LONG_RUN = "hidden=32&batch_size=16&epochs=500"


async def tabs(url: str, n: int, seconds: float) -> list[Tally]:
    """`n` Chromium tabs (one browser context each) on the Train page for `seconds`, their
    websocket frames tallied as the visitors' are."""
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
        await asyncio.sleep(seconds)
        await browser.close()
    return tallies


def figures(name: str, tallies: list[Tally], health: HealthWatch, cpu: float) -> str:
    lat = [s for t in tallies for s in t.latencies]
    runs = [t.fragment_runs for t in tallies]
    errors = sum(len(t.errors) for t in tallies)
    if not lat:
        return f"{name}: no refresh answered (errors {errors})"
    h = health.latencies
    return (
        f"{name}: refresh p50 {quantile(lat, 0.5) * 1000:.0f} ms, p90 "
        f"{quantile(lat, 0.9) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms ({len(lat)} asked, "
        f"refreshes per page {min(runs)}-{max(runs)}); health p50 {quantile(h, 0.5) * 1000:.0f} "
        f"ms, p99 {quantile(h, 0.99) * 1000:.0f} ms, max {max(h) * 1000:.0f} ms; server CPU "
        f"{cpu:.0%}; {sum(t.bytes_in for t in tallies) / len(tallies) / 1000:.0f} kB per page; "
        f"errors {errors}"
    )


async def measure(url: str, pid: int, args) -> None:
    starter = Visitor(url, query=LONG_RUN)
    total = 2 * args.seconds + 60
    started = asyncio.create_task(starter.visit(total, clicks={0.0: "train_start"}))
    while not starter.tally.progress:
        await asyncio.sleep(0.1)
    phases = [("visitors", args.visitors, crowd), ("tabs", args.tabs, tabs)]
    for name, n, how in phases:
        if not n:
            continue
        await asyncio.sleep(2)  # the last phase's pages gone
        health = HealthWatch(url).start()
        cpu, began = cpu_seconds(pid), time.monotonic()
        tallies = await how(url, n, args.seconds)
        health.stop()
        share = (cpu_seconds(pid) - cpu) / (time.monotonic() - began)
        print(figures(f"{n} {name}, {args.seconds} s", tallies, health, share), flush=True)
    started.cancel()


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
