"""The run history's listener: every run's events written down as they happen.

A Run's listener (jobs.py) that turns its events into writes to the RunStore (runstore.py).
A failed write (the file locked, the disk full, read-only, damaged) becomes `problem`, one
sentence the Train page shows, never a failed run: training goes on, and runs not
written down stay listed until the server stops.
"""

import time
from pathlib import Path

from ..recipe import Recipe
from .events import Began, Ended, EpochEnded, Event, Progressed, Starting
from .runstore import HistoryError, RunRow, RunStore
from .status import RunStatus


class HistoryRecorder:
    """Writes runs to the history at `path` (none if None); `problem` says why it cannot."""

    def __init__(self, path: str | Path | None = None):
        self.store: RunStore | None = None
        self.problem: str | None = None  # a sentence when the history cannot be kept
        self.closing = False  # the server is exiting: write nothing more
        if path is not None:
            try:
                self.store = RunStore(Path(path))
                self.store.after_restart()
            except HistoryError as e:
                self.store, self.problem = None, self._sentence(e)

    @staticmethod
    def _sentence(e: HistoryError) -> str:
        return f"{e} Training still works; runs not written down are shown until the server stops."

    def _write(self, method: str, *args, **kwargs):
        """One write to the history; a failure becomes `problem`, never a failed run."""
        if self.store is None or self.closing:
            return None
        try:
            return getattr(self.store, method)(*args, **kwargs)
        except HistoryError as e:
            self.problem = self._sentence(e)
            return None

    def past_runs(self) -> list[RunRow]:
        """The runs of earlier servers, oldest first (none if the history cannot be read)."""
        if self.store is None:
            return []
        try:
            return self.store.runs()
        except HistoryError as e:
            self.store, self.problem = None, self._sentence(e)
            return []

    def curves(self, run_id: int):
        """A function that reads run `run_id`'s (losses, accuracies) when first asked."""

        def read():
            try:
                return self.store.losses(run_id)[1], self.store.accuracies(run_id)
            except HistoryError as e:
                self.problem = self._sentence(e)
                return [], []

        return read

    def add_run(self, recipe: Recipe, device: str, owner: str) -> int | None:
        """The new run's id in the history, or None if it could not be written."""
        return self._write("add_run", recipe, device, owner)

    def delete_run(self, run_id: int) -> None:
        self._write("delete_run", run_id)

    def __call__(self, run, event: Event) -> None:
        """A run's event (a Run's listener): write it down."""
        match event:
            case Starting():
                self._write("update_run", run.id, status=RunStatus.STARTING, started=time.time())
            case Began(total_steps):
                self._write("update_run", run.id, status=RunStatus.RUNNING, total_steps=total_steps)
            case Progressed(losses, step, seen, elapsed):
                self._write("add_losses", run.id, list(event.steps), losses)
                self._write("update_run", run.id, step=step, seen=seen, elapsed=elapsed)
            case EpochEnded(epoch, accuracy):
                self._write("add_accuracy", run.id, epoch, accuracy)
                self._write("update_run", run.id, epoch=epoch, test_accuracy=accuracy)
            case Ended(status, message, out):
                self._write("update_run", run.id, status=status, message=message, out=out,
                            ended=time.time())  # fmt: skip

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
