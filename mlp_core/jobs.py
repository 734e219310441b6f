"""Training jobs: a run in a background thread, watched by anyone, stopped on request.

A web page must stay responsive while a model trains, and the run must outlive
the page that started it. So a TrainingJob owns a thread that runs the
Learner; callbacks copy the live numbers into the job under a lock, and any
caller (a dashboard refreshing once a second, a test) reads a consistent
snapshot. The thread never touches the UI. A Trainer holds the one job a
server may run at a time, and the runs it has made.
"""

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import budget
from .checkpoint import ModelFileError, check_quota, model_filename, save_checkpoint, unused_path
from .data import Split, load_mnist
from .devices import resolve_device
from .errors import UserError
from .history import LossHistory
from .insight import WeightWatch
from .learner import Callback, CancelFitException, DivergedError, Learner
from .lr_finder import LRFinderResult, lr_find
from .recipe import Recipe
from .train import build_learner, training_record

ACTIVE = ("starting", "running")
STATUSES = (*ACTIVE, "finished", "stopped", "diverged", "failed")


class JobBusyError(UserError, RuntimeError):
    """A run is already going: one at a time per server."""


@dataclass
class Snapshot:
    """A consistent copy of a job's state, safe to read from any thread."""

    id: int
    status: str
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

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, estimated from the pace so far."""
        if not self.step or not self.active:
            return None
        return self.elapsed / self.step * (self.total_steps - self.step)


class _Watch(Callback):
    """Copies live numbers into the job, and turns a stop request into a clean stop."""

    order = 10

    def __init__(self, job: "TrainingJob"):
        self.job = job

    def before_fit(self, learn):
        with self.job._lock:
            self.job._total_steps = learn.epochs * len(learn.train)
            self.job._status = "running"

    def after_batch(self, learn):
        job = self.job
        with job._lock:
            job._losses.append(learn.loss)  # bounded: long runs keep averages of neighbours
            job._step, job._seen = job._step + 1, job._seen + learn.batch_size
            job._elapsed = learn.seconds
        if job._stop.is_set():
            raise CancelFitException  # checked every batch: a stop takes effect within one

    def after_epoch(self, learn):
        with self.job._lock:
            self.job._accuracies.append(learn.test_accuracy)
            self.job._epoch = learn.epochs_done


class TrainingJob:
    """One training run by `recipe` in a daemon thread. `start`, `stop`, `snapshot`."""

    _ids = iter(range(1, 1_000_000))

    def __init__(
        self,
        recipe: Recipe,
        data_dir=None,
        models_dir="models",
        data: tuple[Split, Split] | None = None,
        cbs: list[Callback] = (),
        eager: bool | None = None,  # build_learner's: None captures the step on CUDA
    ):
        self.id, self.recipe = next(self._ids), recipe
        self.eager = eager
        self.data_dir, self.models_dir, self.data = data_dir, Path(models_dir), data
        self.cbs = list(cbs)
        self.extras: dict = {}  # what callbacks publish: "weights" (n, 28, 28), "norms" [...]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._status, self._message = "starting", "Loading MNIST..."
        self._losses = LossHistory()
        self._accuracies: list[float] = []
        self._epoch = self._step = self._seen = self._total_steps = 0
        self._elapsed, self._out = 0.0, None
        self._thread = threading.Thread(
            target=self._run, name=f"training-job-{self.id}", daemon=True
        )

    def start(self) -> "TrainingJob":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to end; it does so after the batch in progress."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True if it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def publish(self, key: str, value) -> None:
        """For callbacks: share a value with readers (they get it in Snapshot.extras)."""
        with self._lock:
            self.extras[key] = value

    def _set(self, status: str, message: str) -> None:
        with self._lock:
            self._status, self._message = status, message

    def _run(self) -> None:
        learn: Learner | None = None
        try:
            train, test = self.data or (
                load_mnist(True, self.data_dir),
                load_mnist(False, self.data_dir),
            )
            # templates (up to 64, the page shows as many as asked) and norms for the live view
            watch_weights = WeightWatch(self.publish, n=64)
            cbs = [_Watch(self), watch_weights, *self.cbs]
            learn = build_learner(self.recipe, train, test, cbs, eager=self.eager)
            learn.job = self  # lets callbacks reach the job (publish, stop)
            self._set("running", "Training...")
            learn.fit(self.recipe.epochs)
            if learn.epochs_done == 0:
                self._set("stopped", "Stopped before the first epoch ended; nothing was saved.")
                return
            check_quota(self.models_dir)
            out = unused_path(self.models_dir / model_filename(self.recipe, learn.test_accuracy))
            save_checkpoint(out, learn.model, self.recipe, training_record(learn), overwrite=False)
            with self._lock:
                self._out = str(out)
            done = (
                f"after {learn.epochs_done} of {self.recipe.epochs} epochs" if learn.stopped else ""
            )
            status = "stopped" if learn.stopped else "finished"
            self._set(status, f"Test accuracy: {learn.test_accuracy:.4f} {done}".strip())
        except DivergedError as e:
            self._set("diverged", str(e))
        except torch.cuda.OutOfMemoryError:
            self._set(
                "failed",
                "CUDA ran out of memory: try a smaller batch size or hidden layers, or the CPU.",
            )
        except ModelFileError as e:  # e.g. the models folder filled up during the run
            self._set("failed", str(e))
        except OSError as e:  # the message would show the server's folders: only say why
            self._set("failed", f"Saving the model failed: {e.strerror or type(e).__name__}.")
        except Exception as e:  # any other failure ends this run, never the server
            self._set("failed", f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        finally:
            del learn  # free the model and the data copy on the device
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def snapshot(self) -> Snapshot:
        with self._lock:
            elapsed = self._elapsed
            loss_steps, losses = self._losses.points()
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
                test_accuracy=self._accuracies[-1] if self._accuracies else None,
                out=self._out,
                device=self.recipe.device,
                extras=dict(self.extras),
            )


class Trainer:
    """The server's one training slot, and the runs it has made.

    `start` is atomic: two callers at the same moment start one run; the
    other gets JobBusyError. The learning-rate finder takes the same slot, so
    neither can run beside the other. Every run is priced first (`budget.check`)
    and refused with a sentence if it costs more than `limits` allow.
    """

    def __init__(self, models_dir="models", data_dir=None, limits: budget.Limits | None = None):
        self.models_dir, self.data_dir = models_dir, data_dir
        self.limits = limits
        self._lock = threading.Lock()
        self._finding = False  # the learning-rate finder holds the slot
        self.jobs: list[TrainingJob] = []

    @property
    def current(self) -> TrainingJob | None:
        """The latest job, running or not."""
        return self.jobs[-1] if self.jobs else None

    def active(self) -> TrainingJob | None:
        job = self.current
        return job if job is not None and job.snapshot().active else None

    def _claim(self) -> None:
        """Raise JobBusyError unless the slot is free (call with the lock held)."""
        if self._finding:
            raise JobBusyError(
                "The learning-rate finder is running on this server; try again in a few seconds."
            )
        if self.active() is not None:
            raise JobBusyError(
                "A training run is already going on this server; wait for it to end or stop it."
            )

    def _train_split(self, data) -> Split:
        return data[0] if data is not None else load_mnist(True, self.data_dir, download=False)

    def start(self, recipe: Recipe, data=None, cbs: list[Callback] = ()) -> TrainingJob:
        """Price and start a run; RecipeError (BudgetError), DeviceError, ModelFileError (the
        models folder is full), DataError or JobBusyError with one sentence if it cannot."""
        resolve_device(recipe.device)  # a forged or absent device: DeviceError, one sentence
        n_train = len(self._train_split(data))
        recipe.validate(n_train)
        est = budget.check(recipe, n_train, self.limits)
        check_quota(self.models_dir, adding=est.params * 4)
        with self._lock:
            self._claim()
            job = TrainingJob(recipe, self.data_dir, self.models_dir, data=data, cbs=cbs)
            self.jobs.append(job)
            return job.start()

    def find_lr(self, recipe: Recipe, data=None, **kwargs) -> LRFinderResult:
        """Run the learning-rate finder on `recipe` in the caller's thread, holding the slot."""
        resolve_device(recipe.device)
        train = self._train_split(data)
        recipe.validate(len(train))
        budget.check(recipe, len(train), self.limits, steps=kwargs.get("num_it", 200))
        with self._lock:
            self._claim()
            self._finding = True
        try:
            # eager on every device: the finder sets a new rate from Python before each batch,
            # which a captured CUDA step (its rate a tensor inside the graph) would not see
            return lr_find(build_learner(recipe, train, eager=True), **kwargs)
        finally:
            with self._lock:
                self._finding = False

    def stop(self) -> None:
        if (job := self.active()) is not None:
            job.stop()

    def wait(self, timeout: float = 60.0, poll: float = 0.05) -> Snapshot | None:
        """Block until the current job ends (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        while (job := self.active()) is not None and time.monotonic() < deadline:
            job.join(poll)
        return self.current.snapshot() if self.current else None
