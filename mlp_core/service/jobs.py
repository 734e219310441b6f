"""Training jobs: a run as everyone sees it, and the loop that trains it wherever it runs.

A web page must stay responsive while a model trains, and the run must outlive the page
that started it. So the training happens elsewhere (a worker process, see worker.py, or a
thread of this process for scripts and tests), and the numbers it makes come back as
typed events (events.py): `Began`, `Progressed` (the losses since the last one: every
batch, or a few times a second from a worker process), `EpochEnded`, `Published`
(pictures and norms for the live view) and `Ended`. A `Run` applies those events under a
lock and hands any reader (a dashboard refreshing once a second, a test) a consistent
`Snapshot`; its listeners (the run history, the queue) hear each event after it is
applied. A `TrainingJob` is the loop on the other side: it builds the Learner, fits it
with a callback that emits the events, saves the model.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import fast  # noqa: F401  (plugs the captured CUDA step into build_learner)
from ..checkpoint import ModelFileError, save_checkpoint
from ..data import Split, load_mnist
from ..errors import UserError
from ..insight import WeightWatch
from ..learner import Callback, CancelFitException, DivergedError, Learner
from ..lr_finder import LRFinderResult, lr_find
from ..recipe import Recipe
from ..train import build_learner, training_record
from .events import Began, Ended, EpochEnded, Event, Progressed, Published, Starting
from .history import LossHistory
from .models_folder import check_quota, model_filename, unused_path
from .status import ACTIVE, ENDED, WAITING, RunStatus


class JobBusyError(UserError, RuntimeError):
    """The server cannot take this run or scan now (a queue or finder limit)."""


@dataclass
class Snapshot:
    """A consistent copy of a run's state, safe to read from any thread."""

    id: int
    status: RunStatus
    message: str
    recipe: Recipe
    epoch: int  # epochs completed
    epochs: int
    step: int  # batches done
    total_steps: int
    elapsed: float  # seconds
    samples_per_sec: float
    losses: list[float]  # training loss per batch, averaged over `loss_steps` on long runs
    loss_steps: list[int]  # the batch (1-based) each loss ends at; at most a few thousand
    accuracies: list[float]  # test accuracy after each epoch
    test_accuracy: float | None
    out: str | None  # saved model file, once finished
    device: str
    extras: dict = field(default_factory=dict)  # from callbacks: "weights", "weights_step", "norms"
    owner: str = ""  # who started it (a browser's token hash; "" for scripts)
    created: float = 0.0  # time.time() when it was queued
    version: int = 0  # events applied to the run so far: equal versions, equal snapshots

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def waiting(self) -> bool:
        return self.status in WAITING

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, estimated from the pace so far."""
        if not self.step or not self.active:
            return None
        return self.elapsed / self.step * (self.total_steps - self.step)


class Run:
    """One run as the server knows it: queued, training somewhere, or ended.

    The training side applies events (`apply`, or the method of the same name, from its
    thread or the thread that reads a worker process's messages); readers call `snapshot`.
    Each of `listeners`, `listener(run, event)`, hears every event after it is applied (the
    run history writes them down; the queue frees the device when a run ends).
    """

    def __init__(
        self,
        id: int,
        recipe: Recipe,
        owner: str = "",
        created: float | None = None,
        listeners: tuple[Callable[["Run", Event], None], ...] = (),
    ):
        self.id, self.recipe, self.owner = id, recipe, owner
        self.device = recipe.device
        self.created = time.time() if created is None else created
        self.listeners = tuple(listeners)
        self.extras: dict = {}  # what callbacks publish: "weights" (n, 28, 28), "norms" [...]
        self._lock = threading.Lock()
        self._done = threading.Event()  # set once Ended has been heard
        self._over = False  # Ended was applied
        self._status, self._message = RunStatus.QUEUED, "Waiting for its turn."
        self._losses = LossHistory()
        self._accuracies: list[float] = []
        self._epoch = self._step = self._seen = self._total_steps = 0
        self._elapsed, self._out = 0.0, None
        self._restore: Callable | None = None  # a past run's curves, read when first shown
        self._final: float | None = None  # a past run's test accuracy, before its curves
        self._version = 0  # events applied (with the lock held): a view of the run is stale
        # when it has moved on

    # -- events, from the training side ---------------------------------------------------

    def apply(self, event: Event) -> None:
        """Apply one of the run's events (events.py); anything else is a TypeError."""
        match event:
            case Starting(message):
                self.starting(message)
            case Began(total_steps):
                self.began(total_steps)
            case Progressed(losses, step, seen, elapsed):
                self.progressed(losses, step, seen, elapsed)
            case EpochEnded(epoch, accuracy):
                self.epoch_ended(epoch, accuracy)
            case Published(key, value):
                self.publish(key, value)
            case Ended(status, message, out):
                self.ended(status, message, out)
            case _:
                raise TypeError(f"not a run's event: {type(event).__name__}")

    def _tell(self, event: Event) -> None:
        for listener in self.listeners:
            listener(self, event)

    def starting(self, message: str = "Loading MNIST...") -> None:
        with self._lock:
            self._status, self._message = RunStatus.STARTING, message
            self._version += 1
        self._tell(Starting(message))

    def began(self, total_steps: int) -> None:
        with self._lock:
            self._status, self._message = RunStatus.RUNNING, "Training..."
            self._total_steps = total_steps
            self._version += 1
        self._tell(Began(total_steps))

    def progressed(self, losses: list[float], step: int, seen: int, elapsed: float) -> None:
        """The losses of the batches since the last call; `step` batches done in all."""
        with self._lock:
            for loss in losses:
                self._losses.append(loss)  # bounded: long runs keep averages of neighbours
            self._step, self._seen, self._elapsed = step, seen, elapsed
            self._version += 1
        self._tell(Progressed(list(losses), step, seen, elapsed))

    def epoch_ended(self, epoch: int, accuracy: float) -> None:
        with self._lock:
            self._accuracies.append(accuracy)
            self._epoch = epoch
            self._version += 1
        self._tell(EpochEnded(epoch, accuracy))

    def publish(self, key: str, value) -> None:
        """For callbacks: share a value with readers (they get it in Snapshot.extras)."""
        with self._lock:
            self.extras[key] = value
            self._version += 1

    def ended(self, status: RunStatus, message: str, out: str | None = None) -> None:
        """The run is over (once: a later call is ignored). `join` returns after the
        listeners have heard it: the run is written down and its device free again."""
        with self._lock:
            if self._over:
                return
            self._over = True
            self._status, self._message, self._out = RunStatus(status), message, out
            self._version += 1
        try:
            self._tell(Ended(status, message, out))
        finally:
            self._done.set()

    # -- readers ----------------------------------------------------------------------------

    @property
    def status(self) -> RunStatus:
        with self._lock:
            return self._status

    @property
    def version(self) -> int:
        """How many events the run has applied: a snapshot of an equal version is current."""
        with self._lock:
            return self._version

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True if it has."""
        return self._done.wait(timeout)

    def snapshot(self, curves: bool = True) -> Snapshot:
        """`curves=False`: without losses and pictures (a table of many runs needs none)."""
        if curves and self._restore is not None:
            self._restore_curves()
        with self._lock:
            elapsed = self._elapsed
            loss_steps, losses = self._losses.points() if curves else ([], [])
            return Snapshot(
                id=self.id,
                status=self._status,
                message=self._message,
                recipe=self.recipe,
                epoch=self._epoch,
                epochs=self.recipe.epochs,
                step=self._step,
                total_steps=self._total_steps,
                elapsed=elapsed,
                samples_per_sec=self._seen / elapsed if elapsed > 0 else 0.0,
                losses=losses,
                loss_steps=loss_steps,
                accuracies=list(self._accuracies),
                test_accuracy=self._accuracies[-1] if self._accuracies else self._final,
                out=self._out,
                device=self.device,
                extras=dict(self.extras) if curves else {},
                owner=self.owner,
                created=self.created,
                version=self._version,
            )

    # -- a run from the history of an earlier server ------------------------------------------

    @classmethod
    def past(cls, row, curves: Callable, listeners=()) -> "Run":
        """A run read back from the run history (a runstore.RunRow); `curves()` returns its
        (losses, accuracies) when the run is first shown."""
        run = cls(row.id, row.recipe, row.owner, row.created, listeners)
        run.device = row.device
        run._status, run._message, run._out = RunStatus(row.status), row.message, row.out
        run._epoch, run._step, run._seen = row.epoch, row.step, row.seen
        run._total_steps, run._elapsed = row.total_steps, row.elapsed
        run._restore, run._final = curves, row.test_accuracy
        if row.status in ENDED:
            run._over = True
            run._done.set()
        return run

    def _restore_curves(self) -> None:
        curves, self._restore = self._restore, None
        if curves is None:
            return
        losses, accuracies = curves()
        with self._lock:
            for loss in losses:
                self._losses.append(loss)
            self._accuracies = list(accuracies)


class _Watch(Callback):
    """Emits the run's live numbers (every `every` seconds), and turns a stop request (the
    `stop` event, set by TrainingJob.stop) into a clean stop, checked every batch."""

    order = 10  # after DivergenceGuard (-10): a diverging loss is never recorded

    def __init__(self, emit: Callable[[Event], None], stop: threading.Event, every: float = 0.0):
        self.emit, self.stop, self.every = emit, stop, every

    def before_fit(self, learn):
        self.losses, self.step, self.seen, self.last = [], 0, 0, time.monotonic()
        self.emit(Began(learn.epochs * len(learn.train)))

    def flush(self, learn):
        if self.losses:
            self.emit(Progressed(self.losses, self.step, self.seen, learn.seconds))
            self.losses, self.last = [], time.monotonic()

    def after_batch(self, learn):
        self.losses.append(learn.loss)
        self.step, self.seen = self.step + 1, self.seen + learn.batch_size
        if time.monotonic() - self.last >= self.every:
            self.flush(learn)
        # checked after the flush: a stop requested after a reader saw step s ends at s + 1
        # at the latest (checked before it, a stop landing between the check and the flush
        # would run one batch more)
        if self.stop.is_set():
            self.flush(learn)
            raise CancelFitException

    def after_epoch(self, learn):
        self.flush(learn)
        self.emit(EpochEnded(learn.epochs_done, learn.test_accuracy))

    def after_fit(self, learn):
        self.flush(learn)


Data = tuple[Split, Split]


class TrainingJob:
    """The training loop of one run: build the Learner by `recipe`, fit it while emitting
    the run's events (to `run`, or to `emit`: a worker's pipe), save the model. `train`
    does it in the caller's thread; `start` in a daemon thread of its own."""

    _ids = iter(range(1, 1_000_000))

    def __init__(
        self,
        recipe: Recipe,
        data_dir=None,
        models_dir="models",
        data: Data | Callable[[], Data] | None = None,
        cbs: list[Callback] = (),
        eager: bool | None = None,  # build_learner's: None captures the step on CUDA
        run: Run | None = None,  # the run the events go to; a new Run if neither is given
        emit: Callable[[Event], None] | None = None,  # where events go instead (a pipe)
        report_every: float = 0.0,  # seconds between Progressed events; 0: every batch
        run_id: int | None = None,  # with `emit`: the run's id, for the thread's name
    ):
        self.recipe, self.eager = recipe, eager
        self.data_dir, self.models_dir, self.data = data_dir, Path(models_dir), data
        self.cbs, self.report_every = list(cbs), report_every
        if emit is None and run is None:
            run = Run(next(self._ids), recipe)
        self.run = run
        self.emit = emit if emit is not None else run.apply
        self.id = run.id if run is not None else run_id
        self.stop_requested = threading.Event()  # the stop event _Watch checks every batch
        self._thread: threading.Thread | None = None

    def start(self) -> "TrainingJob":
        self._thread = threading.Thread(target=self.train, name=f"training-{self.id}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to end; it does so after the batch in progress."""
        self.stop_requested.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def snapshot(self) -> Snapshot:
        return self.run.snapshot()

    def _load(self) -> Data:
        if callable(self.data):
            return self.data()
        return self.data or (load_mnist(True, self.data_dir), load_mnist(False, self.data_dir))

    def train(self) -> None:
        """Train to the end, stop or failure; the last event emitted is always Ended."""
        learn: Learner | None = None
        watch: _Watch | None = None
        end = (RunStatus.FAILED, "The run ended without a word (a bug).", None)
        try:
            self.emit(Starting())
            train, test = self._load()
            # templates (up to 64, the page shows as many as asked) and norms for the live view
            watch_weights = WeightWatch(lambda key, value: self.emit(Published(key, value)), n=64)
            watch = _Watch(self.emit, self.stop_requested, self.report_every)
            cbs = [watch, watch_weights, *self.cbs]
            learn = build_learner(self.recipe, train, test, cbs, eager=self.eager)
            learn.fit(self.recipe.epochs)
            if learn.epochs_done == 0:
                end = (
                    RunStatus.STOPPED,
                    "Stopped before the first epoch ended; nothing was saved.",
                    None,
                )
                return
            check_quota(self.models_dir)
            out = unused_path(self.models_dir / model_filename(self.recipe, learn.test_accuracy))
            save_checkpoint(out, learn.model, self.recipe, training_record(learn), overwrite=False)
            done = (
                f"after {learn.epochs_done} of {self.recipe.epochs} epochs" if learn.stopped else ""
            )
            status = RunStatus.STOPPED if learn.stopped else RunStatus.FINISHED
            end = (status, f"Test accuracy: {learn.test_accuracy:.4f} {done}".strip(), str(out))
        except DivergedError as e:
            end = (RunStatus.DIVERGED, str(e), None)
        except torch.cuda.OutOfMemoryError:
            end = (
                RunStatus.FAILED,
                "CUDA ran out of memory: try a smaller batch size or hidden layers, or the CPU.",
                None,
            )
        except (ModelFileError, UserError) as e:  # e.g. the models folder filled up, no MNIST
            end = (RunStatus.FAILED, str(e), None)
        except OSError as e:  # the message would show the server's folders: only say why
            end = (
                RunStatus.FAILED,
                f"Saving the model failed: {e.strerror or type(e).__name__}.",
                None,
            )
        except Exception as e:  # any other failure ends this run, never the server
            end = (
                RunStatus.FAILED,
                f"{type(e).__name__}: {e}" if str(e) else type(e).__name__,
                None,
            )
        finally:
            if watch is not None and learn is not None and hasattr(watch, "losses"):
                watch.flush(learn)  # the batches recorded before a failure
            del learn  # free the model and the data copy on the device
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.emit(Ended(*end))


def lr_find_for(
    recipe: Recipe,
    data: Data | Callable[[], Data],
    stop: threading.Event | None = None,
    **kwargs,
) -> LRFinderResult:
    """The learning-rate finder on `recipe`'s model, on the training split of `data`; it ends
    after the batch in progress once `stop` is set (what it found so far comes back).

    Eager on every device: the finder sets a new rate from Python before each batch, which
    a captured CUDA step (its rate a tensor inside the graph) would not see.
    """
    train = (data() if callable(data) else data)[0]
    cbs = [_StopWhen(stop)] if stop is not None else []
    return lr_find(build_learner(recipe, train, cbs=cbs, eager=True), **kwargs)


class _StopWhen(Callback):
    """Cancels the fit after any batch once its event is set."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def after_batch(self, learn):
        if self.stop.is_set():
            raise CancelFitException
