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
import hmac
import os
import secrets
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
from .models_folder import check_quota, check_writable
from .recorder import HistoryRecorder
from .runstore import RunStore
from .status import ACTIVE, ENDED, WAITING, RunStatus
from .worker import ProcessWorker, ThreadWorker, Worker

MAX_WAITING_PER_OWNER = 3  # runs one browser may have in line (MLP_MAX_WAITING_PER_BROWSER)
MAX_WAITING = 50  # runs in line on the whole server (MLP_MAX_WAITING)
MAX_WAITING_PER_ADDRESS = 6  # runs one network address may have in line (MLP_..._PER_ADDRESS)
MAX_VISITOR_HOURS = 1.0  # estimated hours of training one browser or address may have in
# line, beyond its first waiting run (which may be as long as the budget allows)
MAX_WAIT_HOURS = 3.0  # a run is given a place only if it should start within this: the
# longest run the budget allows (2 h) training, plus one address's hour in line


_LIVE: "weakref.WeakSet[Trainer]" = weakref.WeakSet()


@atexit.register
def _server_exits() -> None:
    """The server is stopping: its runs are cut short, not failed. Nothing more is written
    (the next start reads runs left "running" as interrupted), then the workers end."""
    for trainer in list(_LIVE):
        trainer._closing = trainer.history.closing = True
        for worker in list(trainer._workers.values()):
            worker.close()


def _hours(seconds: float) -> str:
    """'about 40 min', 'about 2.5 h': an estimate, as a page says it."""
    if seconds < 5400:
        return f"about {max(1, round(seconds / 60))} min"
    return f"about {seconds / 3600:.1f} h"


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
        teacher_password: str | None = None,
    ):
        self.models_dir, self.data_dir, self.limits = Path(models_dir), data_dir, limits
        self.worker_kind = worker
        self.max_waiting_per_owner = max_waiting_per_owner or int(
            os.environ.get("MLP_MAX_WAITING_PER_BROWSER", MAX_WAITING_PER_OWNER)
        )
        self.max_waiting = max_waiting or int(os.environ.get("MLP_MAX_WAITING", MAX_WAITING))
        env = os.environ.get
        self.max_waiting_per_address = int(
            env("MLP_MAX_WAITING_PER_ADDRESS", MAX_WAITING_PER_ADDRESS)
        )
        self.max_visitor_hours = float(env("MLP_MAX_VISITOR_HOURS", MAX_VISITOR_HOURS))
        self.max_wait_hours = float(env("MLP_MAX_WAIT_HOURS", MAX_WAIT_HOURS))
        self._pace = 1.0  # measured training time / the budget's estimate, on this server
        # the teacher: off unless a password is set (here, or MLP_TEACHER_PASSWORD); a right
        # password gets a random pass, which every teacher's action must bring back
        self._teacher_password = teacher_password or env("MLP_TEACHER_PASSWORD") or None
        self._teacher_passes: set[str] = set()
        self._teacher_misses = 0  # wrong passwords in a row: after 10, one more per 10 s
        self._teacher_next_try = 0.0
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
        """A sentence when the history cannot be kept (training goes on), or when its file
        was deleted or replaced under the server. Asking also lets the history check its file
        and retry the ends it could not write (at most every few seconds)."""
        self.history.check()
        return self.history.problem

    @property
    def store(self) -> RunStore | None:
        return self.history.store

    def _heard(self, run: Run, event: Event) -> None:
        """A run's event, after the history's: when a run ends, its device takes the next."""
        if isinstance(event, Ended):
            with self._lock:
                self._measure(run, event)
                if self._training.get(run.device) is run:
                    del self._training[run.device]
                self._launch_args.pop(run.id, None)
                self._dispatch(run.device)

    def _measure(self, run: Run, event: Ended) -> None:
        """Learn this server's pace from a finished run: its training time over the budget's
        estimate, averaged over the runs so far (call with the lock held)."""
        est = self._estimates.get(run.id)
        if event.status != RunStatus.FINISHED or not est:
            return
        ratio = min(20.0, max(0.05, run.snapshot(curves=False).elapsed / est))
        self._pace = 0.7 * self._pace + 0.3 * ratio

    # -- starting, queueing, dispatching ------------------------------------------------------

    def _worker(self, device: str) -> Worker:
        if device not in self._workers:
            kind = ProcessWorker if self.worker_kind == "process" else ThreadWorker
            self._workers[device] = kind(device, self.data_dir, self.models_dir)
        return self._workers[device]

    def _n_train(self, data) -> int:
        return len(data[0] if data is not None else load_mnist(True, self.data_dir, False))

    def start(
        self,
        recipe: Recipe,
        data=None,
        cbs=(),
        owner: str = "",
        eager=None,
        address: str | None = None,
    ) -> Run:
        """Price `recipe` and queue it: it trains as soon as its device is free. `owner` is
        the browser, `address` its connection's network address (None: scripts, tests).

        Raises with one sentence (RecipeError or BudgetError, DeviceError, ModelFileError if
        the models folder is full, DataError, JobBusyError if the queue is full).
        """
        if self.history.taken:  # another server on this history and models folder
            raise JobBusyError(self.history.taken)
        device = str(resolve_device(recipe.device))  # forged or absent: DeviceError
        n_train = self._n_train(data)
        recipe.validate(n_train)
        est = budget.check(recipe, n_train, self.limits)
        check_quota(self.models_dir, adding=est.params * 4)
        check_writable(self.models_dir, adding=est.params * 4)  # not found only at the end
        with self._lock:
            self._admit(owner, address, device, est.seconds)
            run_id = self.history.add_run(recipe, device, owner) or self._next_id
            self._next_id = max(self._next_id, run_id + 1)
            run = Run(run_id, recipe, owner, listeners=self._listeners)
            run.device, run.address = device, address
            self._launch_args[run.id] = (data, list(cbs), eager)
            self._estimates[run.id] = est.seconds
            self._runs.append(run)
            self._dispatch(device)
        return run

    def _admit(
        self, owner: str, address: str | None = None, device: str = "cpu", seconds: float = 0.0
    ) -> None:
        """Raise JobBusyError if the queue has no room for one more of `owner`'s runs, from
        `address`, of `seconds` estimated training on `device` (call with the lock held).

        Counted per browser, per network address (a visitor dropping its cookies is a new
        browser, not a new address) and in work: the estimated hours one browser or address
        has waiting, and the estimated wait of the new place itself.
        """
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
        theirs = [r for r in waiting if address and getattr(r, "address", None) == address]
        if address and len(theirs) >= self.max_waiting_per_address:
            raise JobBusyError(
                f"Your network address already has {len(theirs)} runs waiting, the most one "
                "address may queue; wait until one starts."
            )
        for group in ([r for r in waiting if owner and r.owner == owner], theirs):
            queued = sum(self._estimates.get(r.id, 0.0) for r in group) * self._pace
            if group and queued + seconds * self._pace > self.max_visitor_hours * 3600:
                raise JobBusyError(
                    f"Your runs waiting already add up to {_hours(queued)} of training, the "
                    f"most one visitor may queue is {_hours(self.max_visitor_hours * 3600)}; "
                    "wait until one starts."
                )
        wait = self._wait(device)
        if wait > self.max_wait_hours * 3600:
            raise JobBusyError(
                f"The queue is full: a new run would wait {_hours(wait)} to start, more than "
                f"the {_hours(self.max_wait_hours * 3600)} this server allows; try again later."
            )

    def _wait(self, device: str, before: Run | None = None) -> float:
        """Estimated seconds until the run waiting on `device` before `before` (None: a new
        run at the end of the line) should start: what its current run has left plus the
        estimates of the runs ahead, at this server's pace (call with the lock held)."""
        line = self._line(device)
        ahead = line[: line.index(before)] if before in line else line
        seconds = 0.0
        if (training := self._training.get(device)) is not None:
            snap = training.snapshot(curves=False)  # its eta: no curves needed
            est = self._estimates.get(training.id, 0.0) * self._pace
            seconds += snap.eta if snap.eta is not None else est
        return seconds + sum(self._estimates.get(r.id, 0.0) for r in ahead) * self._pace

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
            if run not in self._line(run.device):
                return None
            return self._wait(run.device, run)

    # -- the teacher ---------------------------------------------------------------------------

    @property
    def has_teacher(self) -> bool:
        """Whether this server has a teacher password (else no one is a teacher)."""
        return self._teacher_password is not None

    def teacher_login(self, password: str) -> str:
        """The teacher's pass for `password` (compared in constant time); NotYoursError with
        a sentence for a wrong one. After 10 wrong ones in a row, one try per 10 s."""
        with self._lock:
            if self._teacher_password is None:
                raise NotYoursError("This server has no teacher password.")
            if time.monotonic() < self._teacher_next_try:
                raise NotYoursError("Too many wrong passwords; try again in a few seconds.")
            given = password.encode() if isinstance(password, str) else b""
            if not hmac.compare_digest(given, self._teacher_password.encode()):
                self._teacher_misses += 1
                if self._teacher_misses >= 10:
                    self._teacher_next_try = time.monotonic() + 10
                raise NotYoursError("That is not the teacher password.")
            self._teacher_misses = 0
            token = secrets.token_hex(16)
            self._teacher_passes.add(token)
            return token

    def is_teacher(self, token) -> bool:
        """Whether `token` is a pass this trainer gave for the teacher password."""
        if not isinstance(token, str) or self._teacher_password is None:
            return False
        with self._lock:
            passes = list(self._teacher_passes)
        return any(hmac.compare_digest(token.encode(), p.encode()) for p in passes)

    def _check_teacher(self, teacher) -> None:
        if not self.is_teacher(teacher):
            raise NotYoursError("Only the teacher can do that; enter the teacher password.")

    def clear_queue(self, teacher) -> int:
        """The teacher's: cancel every waiting run; how many were cancelled."""
        self._check_teacher(teacher)
        with self._lock:
            waiting = [r for r in self._runs if r.status in WAITING]
            for run in waiting:
                self._launch_args.pop(run.id, None)
                run.ended(RunStatus.CANCELLED, "Cancelled by the teacher before it started.")
        return len(waiting)

    def who_queued(self, teacher) -> list[dict]:
        """The teacher's view of what trains and waits: run, status, browser (a prefix of
        its token's hash) and network address."""
        self._check_teacher(teacher)
        with self._lock:
            runs = [r for r in self._runs if r.status in (*ACTIVE, *WAITING)]
        return [
            {"run": r.id, "status": str(r.status), "recipe": r.recipe.describe(),
             "browser": (r.owner or "")[:8], "address": getattr(r, "address", None) or ""}
            for r in runs
        ]  # fmt: skip

    def _check_owner(self, run: Run, owner: str | None, what: str, teacher=None) -> None:
        if teacher is not None and self.is_teacher(teacher):
            return
        if owner is not None and run.owner != owner:
            raise NotYoursError(
                f"Only the browser that started run {run.id} can {what} it; everyone can watch."
            )

    def stop(self, run_id: int | None = None, owner: str | None = None, teacher=None) -> None:
        """Stop a training run (after its batch in progress) or cancel a waiting one.

        `owner`: the asking browser's token (NotYoursError if the run is someone else's);
        None only from the server's own code. Without `run_id`: every run of `owner`.
        `teacher`: the teacher's pass (teacher_login), which may stop any run.
        """
        with self._lock:
            runs = [r for r in self._runs if run_id is None or r.id == run_id]
        for run in runs:
            if run_id is None and owner is not None and run.owner != owner:
                continue
            self._check_owner(run, owner, "stop", teacher)
            with self._lock:  # while it is held, no device can take this run
                status = run.status
                if status in WAITING:
                    self._launch_args.pop(run.id, None)
                    run.ended(RunStatus.CANCELLED, "Cancelled before it started.")
            if status in ACTIVE:
                self._worker(run.device).stop(run.id)

    def delete(self, run_id: int, owner: str | None = None, teacher=None) -> None:
        """Forget an ended run: its row in the history and its model file."""
        run = self.get(run_id)
        if run is None:
            return
        self._check_owner(run, owner, "delete", teacher)
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
