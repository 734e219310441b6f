"""The server's trainer: a queue of runs per device, who may stop what, and the run history.

A class on one server: thirty students press Start within a minute. Each run is priced
first (budget.py) and put in line; each device trains one run at a time, the oldest
waiting first, in a worker (worker.py: ProcessWorker, a process of its own; ThreadWorker, a
thread, for scripts and tests). Every run belongs to the browser that started it (an opaque
`owner` token): only that browser may stop, cancel or delete it, and each browser may
have only a few runs waiting. With a history (recorder.py, a listener of every run's
events, writing to runstore.py) every run is written down as it trains, and read back
when the server starts again.

Every check-then-act (is there room in the queue? is the device free?) happens under one
lock: two browsers pressing Start at the same moment cannot both take a free device.
"""

import atexit
import os
import threading
import time
import weakref
from pathlib import Path

from ..data import load_mnist
from ..devices import resolve_device
from ..errors import UserError
from ..lr_finder import LRFinderResult
from ..recipe import Recipe
from . import budget
from .events import Ended, Event
from .jobs import JobBusyError, Run, Snapshot
from .models_folder import check_quota
from .recorder import HistoryRecorder
from .runstore import RunStore
from .status import ACTIVE, ENDED, WAITING, RunStatus
from .worker import ProcessWorker, ThreadWorker, Worker

MAX_WAITING_PER_OWNER = 3  # runs one browser may have in line (MLP_MAX_WAITING_PER_BROWSER)
MAX_WAITING = 50  # runs in line on the whole server (MLP_MAX_WAITING)


_LIVE: "weakref.WeakSet[Trainer]" = weakref.WeakSet()


@atexit.register
def _server_exits() -> None:
    """The server is stopping: its runs are cut short, not failed. Nothing more is written
    (the next start reads runs left "running" as interrupted), then the workers end."""
    for trainer in list(_LIVE):
        trainer._closing = trainer.history.closing = True
        for worker in list(trainer._workers.values()):
            worker.close()


class NotYoursError(UserError, PermissionError):
    """Only the browser that started a run may stop, cancel or delete it."""


class Trainer:
    """Runs queued per device, trained by workers, written to an optional history.

    `start` prices a run and queues it (JobBusyError if the queue is full); `stop` stops
    or cancels; `delete` forgets an ended run and its model file; `runs` are all runs,
    oldest first, and `training()` those training now. `worker` is "process" (the server)
    or "thread" (scripts, tests).
    """

    def __init__(
        self,
        models_dir="models",
        data_dir=None,
        limits: budget.Limits | None = None,
        history: str | Path | None = None,
        worker: str = "thread",
        max_waiting_per_owner: int | None = None,
        max_waiting: int | None = None,
    ):
        self.models_dir, self.data_dir, self.limits = Path(models_dir), data_dir, limits
        self.worker_kind = worker
        self.max_waiting_per_owner = max_waiting_per_owner or int(
            os.environ.get("MLP_MAX_WAITING_PER_BROWSER", MAX_WAITING_PER_OWNER)
        )
        self.max_waiting = max_waiting or int(os.environ.get("MLP_MAX_WAITING", MAX_WAITING))
        self._lock = threading.RLock()  # re-entered when a run ends while it is held
        self._workers: dict[str, Worker] = {}
        self._training: dict[str, Run] = {}  # device -> the run it trains now
        self._launch_args: dict[int, tuple] = {}  # run id -> (data, cbs), until it starts
        self._estimates: dict[int, float] = {}  # run id -> estimated seconds of training
        self._finding = False
        self._closing = False  # the server is exiting: start nothing more
        self.history = HistoryRecorder(history)  # writes every run's events down
        self._listeners = (self.history, self._heard)  # written down, then the device freed
        self._runs: list[Run] = [
            Run.past(row, self.history.curves(row.id), self._listeners)
            for row in self.history.past_runs()
        ]
        self._next_id = max((r.id for r in self._runs), default=0) + 1
        _LIVE.add(self)

    @property
    def problem(self) -> str | None:
        """A sentence when the history cannot be kept (training goes on)."""
        return self.history.problem

    @property
    def store(self) -> RunStore | None:
        return self.history.store

    def _heard(self, run: Run, event: Event) -> None:
        """A run's event, after the history's: when a run ends, its device takes the next."""
        if isinstance(event, Ended):
            with self._lock:
                if self._training.get(run.device) is run:
                    del self._training[run.device]
                self._launch_args.pop(run.id, None)
                self._dispatch(run.device)

    # -- starting, queueing, dispatching ------------------------------------------------------

    def _worker(self, device: str) -> Worker:
        if device not in self._workers:
            kind = ProcessWorker if self.worker_kind == "process" else ThreadWorker
            self._workers[device] = kind(device, self.data_dir, self.models_dir)
        return self._workers[device]

    def _n_train(self, data) -> int:
        return len(data[0] if data is not None else load_mnist(True, self.data_dir, False))

    def start(self, recipe: Recipe, data=None, cbs=(), owner: str = "", eager=None) -> Run:
        """Price `recipe` and queue it: it trains as soon as its device is free.

        Raises with one sentence (RecipeError or BudgetError, DeviceError, ModelFileError if
        the models folder is full, DataError, JobBusyError if the queue is full).
        """
        device = str(resolve_device(recipe.device))  # forged or absent: DeviceError
        n_train = self._n_train(data)
        recipe.validate(n_train)
        est = budget.check(recipe, n_train, self.limits)
        check_quota(self.models_dir, adding=est.params * 4)
        with self._lock:
            self._admit(owner)
            run_id = self.history.add_run(recipe, device, owner) or self._next_id
            self._next_id = max(self._next_id, run_id + 1)
            run = Run(run_id, recipe, owner, listeners=self._listeners)
            run.device = device
            self._launch_args[run.id] = (data, list(cbs), eager)
            self._estimates[run.id] = est.seconds
            self._runs.append(run)
            self._dispatch(device)
        return run

    def _admit(self, owner: str) -> None:
        """Raise JobBusyError if the queue has no room for one more of `owner`'s runs."""
        waiting = [r for r in self._runs if r.status in WAITING]
        if len(waiting) >= self.max_waiting:
            raise JobBusyError(
                f"The queue is full ({len(waiting)} runs waiting); try again when some have "
                "trained."
            )
        mine = sum(r.owner == owner for r in waiting)
        if owner and mine >= self.max_waiting_per_owner:
            raise JobBusyError(
                f"You already have {mine} runs waiting, the most one browser may queue; "
                "cancel one or wait until one starts."
            )

    def _line(self, device: str) -> list[Run]:
        """The runs waiting for `device`, oldest first (call with the lock held)."""
        return [r for r in self._runs if r.device == device and r.status in WAITING]

    def _next_for(self, device: str) -> Run | None:
        """The run `device` should start now: the oldest waiting, if the device is free."""
        if device in self._training:
            return None
        return next(iter(self._line(device)), None)

    def _dispatch(self, device: str) -> None:
        """Start the next run on `device` if it is free (call with the lock held)."""
        if self._closing or (run := self._next_for(device)) is None:
            return
        self._training[device] = run
        data, cbs, eager = self._launch_args.pop(run.id, (None, [], None))
        self._worker(device).train(run, data, cbs, eager)

    # -- what a page asks -------------------------------------------------------------------

    @property
    def runs(self) -> list[Run]:
        """This server's runs, oldest first (a copy)."""
        with self._lock:
            return list(self._runs)

    @property
    def current(self) -> Run | None:
        """The newest run, whatever its state."""
        with self._lock:
            return self._runs[-1] if self._runs else None

    def training(self) -> list[Run]:
        """The runs training now, one per busy device."""
        with self._lock:
            return list(self._training.values())

    def busy(self) -> bool:
        """Whether any run is training or waiting."""
        with self._lock:
            return bool(self._training) or any(r.status in WAITING for r in self._runs)

    def get(self, run_id: int) -> Run | None:
        with self._lock:
            return next((r for r in self._runs if r.id == run_id), None)

    def place(self, run: Run) -> int | None:
        """1 if `run` is next on its device, 2 after that...; None if it is not waiting."""
        with self._lock:
            line = self._line(run.device)
        return line.index(run) + 1 if run in line else None

    def starts_in(self, run: Run) -> float | None:
        """Seconds until `run` should start: what its device's current run has left, plus
        the estimated training time of every run ahead of it (budget.estimate)."""
        with self._lock:
            line = self._line(run.device)
            training = self._training.get(run.device)
        if run not in line:
            return None
        seconds = 0.0
        if training is not None:
            snap = training.snapshot(curves=False)  # its eta: no curves needed
            left = snap.eta if snap.eta is not None else self._estimates.get(training.id, 0.0)
            seconds += left
        for ahead in line[: line.index(run)]:
            seconds += self._estimates.get(ahead.id, 0.0)
        return seconds

    def _check_owner(self, run: Run, owner: str | None, what: str) -> None:
        if owner is not None and run.owner != owner:
            raise NotYoursError(
                f"Only the browser that started run {run.id} can {what} it; everyone can watch."
            )

    def stop(self, run_id: int | None = None, owner: str | None = None) -> None:
        """Stop a training run (after its batch in progress) or cancel a waiting one.

        `owner`: the asking browser's token (NotYoursError if the run is someone else's);
        None only from the server's own code. Without `run_id`: every run of `owner`.
        """
        with self._lock:
            runs = [r for r in self._runs if run_id is None or r.id == run_id]
        for run in runs:
            if run_id is None and owner is not None and run.owner != owner:
                continue
            self._check_owner(run, owner, "stop")
            with self._lock:  # while it is held, no device can take this run
                status = run.status
                if status in WAITING:
                    self._launch_args.pop(run.id, None)
                    run.ended(RunStatus.CANCELLED, "Cancelled before it started.")
            if status in ACTIVE:
                self._worker(run.device).stop(run.id)

    def delete(self, run_id: int, owner: str | None = None) -> None:
        """Forget an ended run: its row in the history and its model file."""
        run = self.get(run_id)
        if run is None:
            return
        self._check_owner(run, owner, "delete")
        if run.status not in ENDED:
            raise UserError(f"Run {run.id} has not ended: stop it first, then delete it.")
        out = run.snapshot().out
        if out is not None:
            path = Path(out)
            inside = path.resolve().parent == self.models_dir.resolve()
            if inside and path.suffix == ".pt" and path.is_file():
                path.unlink()
        self.history.delete_run(run.id)
        with self._lock:
            self._runs.remove(run)

    def lr_find(self, recipe: Recipe, data=None, **kwargs) -> LRFinderResult:
        """The learning-rate finder on `recipe`, in `recipe`'s device's worker, one scan at a
        time on the server (JobBusyError for a second); blocks until it is done."""
        device = str(resolve_device(recipe.device))
        n_train = self._n_train(data)
        recipe.validate(n_train)
        budget.check(recipe, n_train, self.limits, steps=kwargs.get("num_it", 200))
        with self._lock:
            if self._finding:
                raise JobBusyError(
                    "Another learning-rate scan is running on this server; try again in a few "
                    "seconds."
                )
            self._finding = True
            worker = self._worker(device)
        try:
            return worker.lr_find(recipe, data, **kwargs)
        finally:
            with self._lock:
                self._finding = False

    def wait(self, timeout: float = 60.0, poll: float = 0.05) -> Snapshot | None:
        """Block until no run trains or waits (scripts and tests); the newest run's snapshot."""
        deadline = time.monotonic() + timeout
        while self.busy() and time.monotonic() < deadline:
            time.sleep(poll)
        return self.current.snapshot() if self.current else None

    def close(self) -> None:
        """Cancel what waits, stop what trains, end the workers (a server shutting down)."""
        self.stop()
        for run in self.runs:
            run.join(30)
        for worker in list(self._workers.values()):
            worker.close()
        self.history.close()
