"""Thirty Train pages watching one run train, each refreshed by its fragment's timer.

The visitors are websocket clients that do what Streamlit's frontend does (watchers.py):
30 Chromium tabs on a 2-core machine would measure the tabs, not the server. The test checks
what each page saw (the run's progress advancing, no error); the figures it prints are the
refreshes' latency (a fragment rerun asked -> its run finished), the health check's and the
server's CPU. Targets for speed are read from those figures, never asserted here.
"""

import asyncio
import time

import pytest

from conftest import quantile, streamlit_server
from watchers import Visitor, Window, crowd

pytestmark = [pytest.mark.browser, pytest.mark.load]

WATCHERS = 30
SECONDS = 15  # measured, once every page has arrived
LONG_RUN = "hidden=32&batch_size=16&epochs=1000"  # tiny MNIST: trains past the visits


def ms(values: list[float], q: float) -> str:
    return f"{quantile(values, q) * 1000:.0f}"


async def watch_a_run(url: str, pid: int):
    """Start a long run from one page, then open WATCHERS pages while it trains; once all
    have arrived, measure SECONDS. Their tallies and the window's measures."""
    stop = asyncio.Event()
    starter = Visitor(url, query=LONG_RUN)
    started = asyncio.create_task(starter.visit(stop, clicks=("train_start",)))
    deadline = time.monotonic() + 60
    try:
        while not starter.tally.progress:  # the worker process starts, then the run trains
            assert time.monotonic() < deadline and not started.done(), starter.tally.errors
            await asyncio.sleep(0.1)
        window = Window(url, pid)
        tallies = await crowd(url, WATCHERS, window, SECONDS)
    finally:
        stop.set()
        await started
    return tallies, window


def test_thirty_pages_watch_a_run_train(tiny_mnist, tmp_path, report):
    env = {"MNIST_ROOT": str(tiny_mnist), "MLP_MODELS_DIR": str(tmp_path)}
    with streamlit_server(env) as server:
        tallies, window = asyncio.run(watch_a_run(server.url, server.pid))
    measured = [t.between(window.began, window.ended) for t in tallies]
    latencies = [s for answered, _ in measured for s in answered]
    unanswered = sum(n for _, n in measured)
    health = window.health
    report(
        f"{WATCHERS} Train pages watching a run, {SECONDS} s once all had arrived: refresh "
        f"p50 {ms(latencies, 0.5)} ms, p90 {ms(latencies, 0.9)} ms, max "
        f"{max(latencies) * 1000:.0f} ms ({len(latencies)} answered, {unanswered} not yet); "
        f"health: {len(health.latencies)} checks, p50 {ms(health.latencies, 0.5)} ms, "
        f"p99 {ms(health.latencies, 0.99)} ms, max {max(health.latencies) * 1000:.0f} ms, "
        f"{len(health.failures)} failures; server CPU {window.cpu:.0%}"
    )
    for i, t in enumerate(tallies):
        assert t.page_runs >= 1 and t.fragment_runs >= 2, (i, t.page_runs, t.fragment_runs)
        assert max(t.progress) > min(t.progress), (i, t.progress)  # saw the run advance
        assert not t.errors, (i, t.errors)
    assert not health.failures, health.failures[:3]
