"""A live server whose training worker is killed, and which is itself restarted mid-run.

The worker process is found among the server's children and killed with SIGKILL while a run
trains: that run ends as failed with a sentence, the next run in line trains in a new worker,
and the server answers health checks throughout. Then the server is stopped while a run
trains and started again on the same history: every run is still listed, and the one that
was training shows as interrupted.
"""

import os
import re
import signal
import time
from pathlib import Path

import pytest

from conftest import HealthWatch, quantile, streamlit_server

pytestmark = pytest.mark.browser
WAIT = 60_000


def worker_pids(server_pid: int) -> list[int]:
    """The server's training worker processes (spawned: `... spawn_main ...`)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server_pid and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


def fill(page, epochs: int, hidden: str = "32", batch: int = 16) -> None:
    page.get_by_role("textbox", name="Hidden layer sizes").fill(hidden)
    page.get_by_role("spinbutton", name="Epochs").fill(str(epochs))
    page.get_by_role("spinbutton", name="Batch size").fill(str(batch))
    page.get_by_role("button", name="Start training").click()


def test_a_killed_worker_fails_one_run_and_a_restart_keeps_the_history(
    browser, tiny_mnist, tmp_path, report
):
    from playwright.sync_api import expect

    env = {
        "MNIST_ROOT": str(tiny_mnist),
        "MLP_MODELS_DIR": str(tmp_path / "models"),
        "MLP_HISTORY": str(tmp_path / "runs.sqlite"),
    }
    context = browser.new_context(viewport={"width": 1200, "height": 1600})
    try:
        with streamlit_server(env) as server:
            with HealthWatch(server.url, every=0.1) as health:
                page = context.new_page()
                page.set_default_timeout(WAIT)
                page.goto(f"{server.url}/train")
                fill(page, epochs=500)  # a run that lasts: run 1
                expect(page.get_by_role("button", name="Stop training")).to_be_visible(timeout=WAIT)
                fill(page, epochs=1)  # run 2 waits behind it
                waiting = page.get_by_role(
                    "gridcell", include_hidden=True
                ).filter(  # the queue's cell, not the toast
                    has_text=re.compile(r"waiting: number 1 in line")
                )
                expect(waiting).to_be_attached(timeout=WAIT)
                (worker,) = worker_pids(server.pid)
                os.kill(worker, signal.SIGKILL)
                killed = time.monotonic()
                # run 2 trains in a new worker and finishes; run 1 is listed as failed
                expect(page.get_by_text(re.compile(r"^Test accuracy: \d\.\d{4}$"))).to_be_visible(
                    timeout=WAIT
                )
                next_done = time.monotonic() - killed
                assert worker_pids(server.pid) not in ([], [worker])
                fill(page, epochs=500)  # run 3: training when the server stops
                expect(page.get_by_role("button", name="Stop training")).to_be_visible(timeout=WAIT)
        # the server is gone mid-run; a new one on the same history
        with streamlit_server(env) as server:
            page = context.new_page()  # the same browser: its cookie, its runs
            page.set_default_timeout(WAIT)
            page.goto(f"{server.url}/train")
            expect(
                page.get_by_text(
                    re.compile(
                        r"The run was interrupted: The server stopped "
                        r"while this run was training"
                    )
                )
            ).to_be_visible(timeout=WAIT)
            table = page.locator('[role="grid"]').filter(
                has=page.locator('[role="columnheader"]', has_text="status")
            )
            expect(table).to_have_attribute("aria-rowcount", "4")  # header + 3 runs
            text = table.inner_text()
    finally:
        context.close()
    latencies = health.latencies
    report(
        f"worker killed mid-run: the next run finished {next_done:.1f} s later; health "
        f"{len(latencies)} checks, p50 {quantile(latencies, 0.5) * 1000:.0f} ms, max "
        f"{max(latencies) * 1000:.0f} ms, {len(health.failures)} failures"
    )
    assert not health.failures, health.failures[:3]
    for status in ("failed", "finished", "interrupted"):
        assert status in text, text
