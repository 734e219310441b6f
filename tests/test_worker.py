"""Training in a worker process: live numbers come back, a killed worker fails only its run,
thirty queued runs finish in order, and the history outlives the trainer.

These spawn real worker processes (as the dashboard does) on tiny synthetic MNIST.
"""

import logging
import multiprocessing
import os
import signal
import sys
import time
import types

import pytest
import torch
from pacing import Slow

from conftest import DASHBOARD, rss_mb, wait_for, wait_until_training
from mlp_core import Recipe, load_checkpoint
from mlp_core.service.events import Began, Found, RunEvent
from mlp_core.service.jobs import Run
from mlp_core.service.runstore import RunStore
from mlp_core.service.trainer import Trainer
from mlp_core.service.worker import DIED, NICE, ProcessWorker

QUICK = dict(hidden=(32,), batch_size=60, epochs=3, lr=0.01, augment=False)


@pytest.fixture
def trainer(tmp_path, tiny_mnist):
    t = Trainer(tmp_path / "models", tiny_mnist, history=tmp_path / "runs.sqlite", worker="process")
    yield t
    t.close()


def test_a_run_in_the_worker_sends_its_live_numbers_and_saves_its_model(trainer):
    run = trainer.start(Recipe(**QUICK))
    snap = trainer.wait(120)
    assert run.join(1) and snap.status == "finished", snap.message
    assert snap.step == len(snap.losses) == snap.total_steps == 30 and len(snap.accuracies) == 3
    assert (
        isinstance(snap.extras["weights"], torch.Tensor) and len(snap.extras["norms"]) == 3 * 2
    )  # layers
    assert load_checkpoint(snap.out).recipe == run.recipe
    worker = trainer._workers["cpu"]
    assert worker.pid != os.getpid() and worker._proc.is_alive()  # kept for the next run


def test_a_worker_killed_mid_run_fails_that_run_and_the_next_one_starts(trainer):
    doomed = trainer.start(Recipe(**{**QUICK, "epochs": 50}), cbs=[Slow(0.01)])
    after = trainer.start(Recipe(**QUICK), owner="next")
    wait_until_training(doomed, 5)
    pid = trainer._workers["cpu"].pid
    os.kill(pid, signal.SIGKILL)
    assert doomed.join(30)
    snap = doomed.snapshot()
    assert snap.status == "failed" and snap.message == DIED and snap.step >= 5
    assert trainer.wait(120).status == "finished" and after.status == "finished"
    assert trainer._workers["cpu"].pid != pid  # a new worker took the queue on


def test_the_worker_is_a_background_job_in_a_session_of_its_own(trainer):
    """Its own session (Linux shares the CPUs between sessions first) at nice 10, so the
    server's share of the CPUs stays the server's while a run trains."""
    run = trainer.start(Recipe(**QUICK))
    assert run.join(120) and run.status == "finished"
    pid = trainer._workers["cpu"].pid
    assert os.getsid(pid) == pid != os.getsid(0)
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(
        19, NICE + os.getpriority(os.PRIO_PROCESS, 0)
    )
    autogroup = f"/proc/{pid}/autogroup"
    if os.path.exists(autogroup):  # autogroups on: that session at nice 10 too
        with open(autogroup) as f:
            assert f.read().split()[-1] == str(NICE)


def test_stop_reaches_the_worker_and_ends_the_run_within_a_few_batches(trainer):
    # The step seen here is the worker's report of up to 0.1 s ago, and the stop takes a trip
    # down the pipe: batches of at least 50 ms (whatever the CPU) make both a few batches.
    # That the loop itself stops within one batch is test_jobs.py's.
    run = trainer.start(Recipe(**{**QUICK, "batch_size": 6, "epochs": 5}), cbs=[Slow(0.05)])
    wait_until_training(run, 5)
    trainer.stop(run.id, owner=None)
    at_request = run.snapshot().step
    assert run.join(10)
    snap = run.snapshot()
    assert snap.status == "stopped" and snap.step < at_request + 20 < 100


def test_thirty_browsers_queue_a_run_each_and_all_finish_in_order(trainer, record_property):
    t0 = time.perf_counter()
    runs = [trainer.start(Recipe(**{**QUICK, "epochs": 1}), owner=f"browser-{i}")
            for i in range(30)]  # fmt: skip
    queued_in = time.perf_counter() - t0
    places = [trainer.place(r) for r in runs]
    assert places[0] is None and places[1:] == list(range(1, 30)) or places == list(range(1, 31))
    worker_mb = []
    wait_for(lambda: worker_mb.append(rss_mb(trainer._workers["cpu"].pid)) or not trainer.busy(),
             timeout=300)  # fmt: skip
    seconds = time.perf_counter() - t0
    assert [r.status for r in runs] == ["finished"] * 30
    started = [trainer.store.run(r.id).started for r in runs]
    assert started == sorted(started), "runs started out of the order they were queued"
    assert len({r.snapshot().out for r in runs}) == 30  # 30 model files, none overwritten
    figures = (
        f"30 queued 1-epoch runs: queued in {queued_in:.2f} s, all finished in {seconds:.1f} s; "
        f"server {rss_mb(os.getpid()):.0f} MB, worker at most {max(worker_mb):.0f} MB"
    )
    print(figures)
    record_property("figures", figures)


def test_the_learning_rate_scan_runs_in_the_worker(trainer):
    found = trainer.lr_find(Recipe(**QUICK))
    assert found.lrs and found.suggestion > 0
    worker = trainer._workers["cpu"]
    assert worker.pid is not None and worker.pid != os.getpid() and worker._proc.is_alive()


def test_the_history_outlives_the_trainer_and_a_run_cut_short_is_interrupted(
    tmp_path, tiny_mnist, trainer
):
    done = trainer.start(Recipe(**QUICK), owner="a")
    assert done.join(120) and done.status == "finished"
    cut = trainer.start(Recipe(**{**QUICK, "epochs": 50}), cbs=[Slow(0.01)], owner="a")
    waiting = trainer.start(Recipe(**QUICK), owner="b")
    wait_until_training(cut, 3)
    # the server dies: nothing closes the history (a new Trainer reads it as it was left)
    again = Trainer(tmp_path / "models", tiny_mnist, history=tmp_path / "runs.sqlite")
    by_id = {r.id: r.snapshot() for r in again.runs}
    assert list(by_id) == [done.id, cut.id, waiting.id]
    old = by_id[done.id]
    assert old.status == "finished" and old.owner == "a" and old.out == done.snapshot().out
    assert old.losses == done.snapshot().losses and old.accuracies == done.snapshot().accuracies
    assert by_id[cut.id].status == "interrupted" and "server stopped" in by_id[cut.id].message
    assert by_id[cut.id].step >= 3
    assert by_id[waiting.id].status == "cancelled"
    assert again.start(Recipe(**QUICK), data=None).id == waiting.id + 1  # ids never reused
    again.close()


class Forged:
    """Not an event: a pipe that sent it must not get any of its methods called."""

    def ended(self, *args):
        raise AssertionError("a forged message was called")


class WorkerGone:
    def join(self, timeout=None):
        pass


def test_a_message_from_the_pipe_that_is_not_an_event_is_refused_with_a_sentence(caplog):
    worker = ProcessWorker("cpu")
    run = Run(1, Recipe(**QUICK))
    worker._runs[run.id] = (run, None)  # sent to a worker; not this pipe's process
    ours, theirs = multiprocessing.Pipe()
    forged = [
        ("ended", 1, "finished", "a string names the Run's method to call", None),
        RunEvent(1, "ended"),
        RunEvent(1, Forged()),
        Found(1, "not a scan's result"),
    ]
    for message in [*forged, RunEvent(1, Began(30))]:
        theirs.send(message)
    theirs.close()  # the reader then stops, as when a worker ends
    with caplog.at_level(logging.WARNING, logger="mlp_core.service.worker"):
        worker._read(WorkerGone(), ours)
    refused = [r.getMessage() for r in caplog.records if r.name == "mlp_core.service.worker"]
    assert len(refused) == len(forged)
    assert all(m.startswith("Refused a message from the worker") for m in refused)
    assert refused[2].endswith("RunEvent(Forged).")
    snap = run.snapshot()
    assert snap.status == "running" and snap.total_steps == 30  # only the real event applied


def test_a_worker_started_by_the_app_leaves_the_history_alone(tmp_path, tiny_mnist, monkeypatch):
    """The worker never runs the app's start-up: only the server opens the history."""
    history = tmp_path / "runs.sqlite"
    store = RunStore(history)
    live = store.add_run(Recipe(**QUICK), "cpu", owner="a", status="running")
    waiting = store.add_run(Recipe(**QUICK), "cpu", owner="b", status="queued")
    store.close()

    def files() -> dict:  # the history and its WAL, which takes the writes first
        return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.glob("runs*")}

    before = files()
    for name, value in [("MLP_HISTORY", history), ("MLP_MODELS_DIR", tmp_path / "models")]:
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("MNIST_ROOT", str(tiny_mnist))
    # as under `streamlit run dashboard.py`: a page's run (where Start spawns the worker) has
    # the app as its __main__ module, which `spawn` re-imports in the new process
    app = types.ModuleType("__main__")
    app.__file__ = DASHBOARD
    monkeypatch.setitem(sys.modules, "__main__", app)
    worker = ProcessWorker("cpu", tiny_mnist, tmp_path / "models")
    try:
        # an answer from the worker: its start-up (any re-import included) is over
        assert worker.lr_find(Recipe(**QUICK), num_it=5).lrs
    finally:
        worker.close()
    assert files() == before  # not written, not even opened
    store = RunStore(history)
    try:
        assert [(r.id, r.status) for r in store.runs()] == [(live, "running"), (waiting, "queued")]
    finally:
        store.close()
