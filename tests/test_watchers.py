"""Thirty Train pages watching one run train, each refreshed by its fragment's timer.

The visitors are websocket clients that do what Streamlit's frontend does (watchers.py),
in a process of their own at a low priority, as visitors' browsers run on their own
machines: 30 Chromium tabs on a 2-core machine would measure the tabs, not the server. The
test checks what each page saw (the run's progress advancing, no error); the figures it
prints are the refreshes' latency (a fragment rerun asked -> its run finished), the health
check's and the server's CPU, measured once every page has arrived. Targets for speed are
read from those figures, never asserted here.
"""

import pytest

from conftest import quantile, streamlit_server
from watchers import elsewhere

pytestmark = [pytest.mark.browser, pytest.mark.load]

WATCHERS = 30
SECONDS = 12  # measured, once every page has arrived and 5 s more


def ms(values: list[float], q: float) -> str:
    return f"{quantile(values, q) * 1000:.0f}"


def test_thirty_pages_watch_a_run_train(tiny_mnist, tmp_path, report):
    env = {"MNIST_ROOT": str(tiny_mnist), "MLP_MODELS_DIR": str(tmp_path)}
    with streamlit_server(env) as server:
        result, health = elsewhere(server.url, server.pid, WATCHERS, SECONDS)
    pages = result["pages"]
    latencies = [s for p in pages for s in p["latencies"]]
    report(
        f"{WATCHERS} Train pages watching a run, {SECONDS} s once all had settled: refresh "
        f"p50 {ms(latencies, 0.5)} ms, p90 {ms(latencies, 0.9)} ms, max "
        f"{max(latencies) * 1000:.0f} ms ({len(latencies)} answered, "
        f"{sum(p['unanswered'] for p in pages)} not yet); health: {len(health.latencies)} "
        f"checks, p50 {ms(health.latencies, 0.5)} ms, p99 {ms(health.latencies, 0.99)} ms, "
        f"max {max(health.latencies) * 1000:.0f} ms, {len(health.failures)} failures; server "
        f"CPU {result['cpu']:.0%} (the visitors' process {result['client']:.0%})"
    )
    for i, p in enumerate(pages):
        assert p["page_runs"] >= 1 and p["fragment_runs"] >= 2, (i, p)
        assert max(p["progress"]) > min(p["progress"]), (i, p["progress"])  # saw it advance
        assert not p["errors"], (i, p["errors"])
    assert not health.failures, health.failures[:3]
