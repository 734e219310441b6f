"""Workers: where a device's runs train. One interface (`Worker`), two kinds side by side:
`ThreadWorker` trains in threads of this process (scripts and tests), `ProcessWorker` in a
worker process (the server): the web server only submits, reads progress and stops.

Why not a thread of the server? Python runs one thread at a time (the GIL), so a
training loop in the server's process competes with every page it serves: with eight
browsers uploading while a run trained on two cores, health checks took up to 1.4 s. And
a crash in training (a CUDA error, the kernel killing the process for memory) would take
the whole app down. A worker process has its own interpreter, runs as a background job
(`nice` 10, in a session of its own), and when it dies only its run is lost: the server
marks it failed, starts a new worker and goes on with the queue.

The worker is started with `spawn` (a fresh interpreter: forking a process that already
runs threads and torch is unsafe), loads MNIST once and keeps it for every run after.
Server and worker talk over one pipe in the typed messages of events.py:

    server -> worker   Train(run_id, recipe, cbs, eager), Stop(run_id),
                       LRFind(request_id, recipe, kwargs)
    worker -> server   RunEvent(run_id, event): one of the run's events, e.g.
                       RunEvent(7, Progressed([2.30, 2.28], 2, 128, 0.05)); Found(id, result)

Each side checks what it receives: anything else is refused with one logged sentence.
"""

import contextlib
import itertools
import logging
import multiprocessing
import os
import queue
import threading
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..data import load_mnist
from ..errors import UserError
from ..lr_finder import LRFinderResult
from ..recipe import Recipe
from .events import (
    EVENTS,
    Ended,
    Event,
    Found,
    LRFind,
    Published,
    RunEvent,
    Stop,
    Train,
)
from .jobs import Data, Run, TrainingJob, lr_find_for
from .status import RunStatus

log = logging.getLogger(__name__)

NICE = 10  # the worker yields the CPU to the web server when both want it
REPORT_EVERY = 0.1  # seconds between progress messages: one pickle per batch would cost more
DIED = (
    "The training process stopped unexpectedly (it was killed, perhaps for lack of memory, "
    "or crashed); this run is lost, the next one starts in a new process."
)


class WorkerDiedError(UserError, RuntimeError):
    """The worker process ended while the server waited for its answer."""


class Worker(Protocol):
    """Trains one device's runs, one after another, and scans for learning rates."""

    device: str

    def train(self, run: Run, data: Data | None = None, cbs=(), eager=None) -> None:
        """Train `run` (its events go to it, Ended last); returns at once."""

    def stop(self, run_id: int) -> None:
        """Ask the run to end after its batch in progress."""

    def lr_find(self, recipe: Recipe, data: Data | None = None, **kwargs) -> LRFinderResult:
        """The learning-rate finder on `recipe`; blocks until it is done."""

    def close(self) -> None:
        """Stop what trains; end the worker."""


# -- in this process --------------------------------------------------------------------------


class ThreadWorker:
    """Trains one device's runs in threads of this process (scripts and tests: callbacks
    and in-memory data pass as they are)."""

    def __init__(self, device: str, data_dir=None, models_dir="models"):
        self.device, self.data_dir, self.models_dir = device, data_dir, models_dir
        self._jobs: dict[int, TrainingJob] = {}

    def train(self, run: Run, data: Data | None = None, cbs=(), eager=None) -> None:
        job = TrainingJob(run.recipe, self.data_dir, self.models_dir, data, cbs, eager, run=run)
        self._jobs = {i: j for i, j in self._jobs.items() if not j.run.join(0)}  # live ones
        self._jobs[run.id] = job
        job.start()

    def stop(self, run_id: int) -> None:
        if (job := self._jobs.get(run_id)) is not None:
            job.stop()

    def lr_find(self, recipe: Recipe, data: Data | None = None, **kwargs) -> LRFinderResult:
        if data is None:
            data = (load_mnist(True, self.data_dir, download=False), None)
        return lr_find_for(recipe, data, **kwargs)

    def close(self) -> None:
        for job in self._jobs.values():
            job.stop()


# -- the worker process -----------------------------------------------------------------------


def _plain(event: Event) -> Event:
    """The event as a plain pickle: a published tensor as a numpy array."""
    if isinstance(event, Published) and isinstance(event.value, torch.Tensor):
        return replace(event, value=event.value.numpy())
    return event


def _step_aside() -> None:
    """Run as a background job: behind the web server, and behind the rest of the machine.

    `nice` ranks processes within one session only: Linux first shares the CPUs fairly
    between sessions (autogroups, on by default), so a worker at nice 10 in the server's
    session still spent that session's share, and the server waited whenever other
    programs were busy too. A session of its own at the same low priority leaves the
    server's share to the server. (The worker no longer gets the terminal's Ctrl-C: it
    ends when the server's end of the pipe closes.)
    """
    with contextlib.suppress(OSError):
        os.setsid()
    with contextlib.suppress(OSError):  # no such file where autogroups are off
        Path("/proc/self/autogroup").write_text(str(NICE))
    with contextlib.suppress(OSError):
        os.nice(NICE)


def main(conn, data_dir, models_dir, threads: int) -> None:
    """The worker: read commands in one thread, train runs one after another in this one."""
    _step_aside()
    torch.set_num_threads(threads)
    lock = threading.Lock()

    def send(message) -> None:
        with lock:
            conn.send(message)

    cached: list = []

    def data():
        """MNIST, read on the first run and kept for every run after."""
        if not cached:
            cached.append((load_mnist(True, data_dir), load_mnist(False, data_dir)))
        return cached[0]

    todo: queue.Queue = queue.Queue()
    jobs: dict[int, TrainingJob] = {}

    def find(request_id, recipe, kwargs) -> None:
        try:
            send(Found(request_id, lr_find_for(recipe, data, **kwargs)))
        except UserError as e:
            send(Found(request_id, UserError(str(e))))
        except Exception as e:  # the finder fails, never the worker
            send(Found(request_id, UserError(f"The scan failed: {type(e).__name__}.")))

    def listen() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the server is gone: so is its worker
                os._exit(0)
            match message:
                case Train(run_id, recipe, cbs, eager):
                    emit = lambda event, run_id=run_id: send(RunEvent(run_id, _plain(event)))
                    jobs[run_id] = TrainingJob(
                        recipe, data_dir, models_dir, data, cbs, eager, emit=emit,
                        report_every=REPORT_EVERY, run_id=run_id,
                    )  # fmt: skip
                    todo.put(run_id)
                case Stop(run_id) if run_id in jobs:
                    jobs[run_id].stop()
                case LRFind(request_id, recipe, kwargs):
                    args = (request_id, recipe, kwargs)
                    threading.Thread(target=find, args=args, daemon=True).start()
                case Stop():
                    pass  # the run has ended already
                case _:
                    log.warning(
                        "The worker refused a message it does not know: %s.", _name(message)
                    )

    threading.Thread(target=listen, daemon=True).start()
    while True:
        run_id = todo.get()
        jobs[run_id].train()  # sends the run's events, Ended last
        del jobs[run_id]


# -- the server's side ------------------------------------------------------------------------


def _reads_its_own(data) -> None:
    """A worker process reads MNIST from data_dir itself: in-memory data cannot be sent."""
    if data is not None:
        raise ValueError("a worker process reads MNIST itself: pass data_dir, not data")


class ProcessWorker:
    """One device's worker process, seen from the server: `train`, `stop`, `lr_find`.

    Started on first use; if it dies, the run it was training ends as failed and the
    next `train` starts a new one. `runs` finds the Run an event is about.
    """

    def __init__(self, device: str, data_dir=None, models_dir="models", threads: int | None = None):
        self.device, self.data_dir, self.models_dir = device, data_dir, str(models_dir)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
        self.threads = threads or max(1, cores - 1)  # a core left for the web server
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._runs: dict[int, tuple] = {}  # (run, its process): sent and not yet ended
        self._found: dict[int, list] = {}  # lr_find requests waiting: [event, answer]
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _ensure(self):
        """The live worker's pipe, starting a worker if there is none (hold the lock)."""
        if self._proc is None or not self._proc.is_alive():
            ctx = multiprocessing.get_context("spawn")
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=main,
                args=(theirs, self.data_dir, self.models_dir, self.threads),
                name=f"mlp-worker-{self.device}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self._proc, self._conn = proc, ours
            threading.Thread(target=self._read, args=(proc, ours), daemon=True).start()
        return self._conn

    def _send(self, message, run: Run | None = None) -> None:
        with self._lock:
            conn = self._ensure()
            if run is not None:
                self._runs[run.id] = (run, self._proc)
            try:
                conn.send(message)
            except (OSError, ValueError):  # it died just now: the reader reports the run
                pass

    def train(self, run: Run, data=None, cbs=(), eager=None) -> None:
        _reads_its_own(data)
        run.starting("Starting...")
        self._send(Train(run.id, run.recipe, list(cbs), eager), run)

    def stop(self, run_id: int) -> None:
        with self._lock:
            alive = self._conn is not None and self._proc.is_alive()
        if alive:
            self._send(Stop(run_id))

    def lr_find(self, recipe: Recipe, data=None, timeout: float = 300, **kwargs) -> LRFinderResult:
        _reads_its_own(data)
        request_id = next(self._ids)
        waiting = self._found[request_id] = [threading.Event(), None]
        self._send(LRFind(request_id, recipe, kwargs))
        try:
            if not waiting[0].wait(timeout):
                raise UserError("The learning-rate scan took too long; try again.")
        finally:
            self._found.pop(request_id, None)
        if isinstance(waiting[1], Exception):
            raise waiting[1]
        return waiting[1]

    def _read(self, proc, conn) -> None:
        """Apply the worker's events to their runs until it ends; then fail what it held."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            self._receive(message)
        proc.join(5)
        conn.close()
        with self._lock:
            lost = [run for run, p in self._runs.values() if p is proc]
            for run in lost:
                del self._runs[run.id]
            if self._proc is proc:
                self._proc = self._conn = None
        for waiting in list(self._found.values()):
            waiting[1] = WorkerDiedError(DIED.partition(";")[0] + ".")
            waiting[0].set()
        for run in lost:
            run.ended(RunStatus.FAILED, DIED)

    def _receive(self, message) -> None:
        """Apply one message from the worker: a run's event, or a scan's answer. Anything
        else is refused with a logged sentence, never called."""
        match message:
            case Found(request_id, result) if isinstance(result, (LRFinderResult, UserError)):
                if (waiting := self._found.get(request_id)) is not None:
                    waiting[1] = result
                    waiting[0].set()
            case RunEvent(run_id, event) if isinstance(event, EVENTS):
                run, _ = self._runs.get(run_id, (None, None))
                if run is None:
                    return
                if isinstance(event, Published) and isinstance(event.value, np.ndarray):
                    event = replace(event, value=torch.from_numpy(event.value))
                if isinstance(event, Ended):
                    with self._lock:
                        self._runs.pop(run_id, None)
                run.apply(event)
            case _:
                log.warning("Refused a message from the worker that is not an event: %s.",
                            _name(message))  # fmt: skip

    def close(self) -> None:
        """End the worker process (its run, if any, ends as failed)."""
        with self._lock:
            proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(5)


def _name(message) -> str:
    """What a refused message was, for the log: its type, and the event's type inside."""
    inner = getattr(message, "event", None)
    return type(message).__name__ + (f"({type(inner).__name__})" if inner is not None else "")
