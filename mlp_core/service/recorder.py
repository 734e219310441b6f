"""The run history's listener: every run's events written down as they happen.

A Run's listener (jobs.py) that turns its events into writes to the RunStore (runstore.py).
A failed write (the file locked, the disk full, read-only, damaged) becomes `problem`, one
sentence the Train page shows, never a failed run: training goes on, and runs not
written down stay listed until the server stops. The sentence goes with the next write that
works; the end of a run that could not be written is tried again every few seconds
(`check`, which the page calls), so no run is left "running" in the history once it can be
written. `check` also notices the file deleted under the server (it is written again from
the open history) or replaced by another (left alone; this server's runs stay in the one
it opened), and says so once.
"""

import contextlib
import fcntl
import logging
import threading
import time
from pathlib import Path

from ..recipe import Recipe
from .events import Began, Ended, EpochEnded, Event, Progressed, Starting
from .runstore import HistoryError, RunRow, RunStore
from .status import RunStatus

CHECK_SECONDS = 2.0  # how often `check` looks at the file and retries ends not written
NOTICE_SECONDS = 600.0  # how long a notice ("the file was deleted", a failed read) is shown

log = logging.getLogger(__name__)


class HistoryRecorder:
    """Writes runs to the history at `path` (none if None); `problem` says why it cannot.

    One server per history: the recorder holds an exclusive lock on `<history>.lock` for its
    life (the kernel drops it when the process ends, however it ends). A second server on
    the same history finds it taken: it neither reads nor writes that history, and
    `taken` says so in one sentence (the trainer then refuses to train).
    """

    def __init__(self, path: str | Path | None = None):
        self.store: RunStore | None = None
        self.problem: str | None = None  # a sentence when the history cannot be kept
        self.taken: str | None = None  # a sentence when another server holds this history
        self.closing = False  # the server is exiting: write nothing more
        self._lock_file = None
        self._endings: dict[int, dict] = {}  # run id -> its end, not yet written down
        self._failed_write = False  # `problem` is a write's: it clears when writes work again
        self._checked = time.monotonic()  # when `check` last looked
        self._checking = threading.Lock()  # one thread at a time recreates the file
        self._writing = threading.Lock()  # one write at a time: a run's events come from the
        # worker's reader thread while its end may come from a page's (Stop) or the watchdog's
        self._notice_until = 0.0  # `problem` is a notice shown until then (time.monotonic)
        self._read_problem: str | None = None  # the sentence of the last failed curve read
        self._moved: str | None = None  # "deleted" or "replaced", once noticed and logged
        if path is not None and not self._lock(Path(path)):
            self.problem = self.taken = (
                f"Another server is using this run history ({Path(path).name}) and models "
                "folder, so this one trains nothing and leaves them alone; stop the other "
                "server, or give this one its own MLP_HISTORY and MLP_MODELS_DIR."
            )
            return
        if path is not None:
            try:
                self.store = RunStore(Path(path))
                self.store.after_restart()
            except HistoryError as e:
                self.store, self.problem = None, self._sentence(e)

    def _lock(self, path: Path) -> bool:
        """Take `<history>.lock`; False if another process holds it (where the lock file
        cannot be made, e.g. a read-only folder, the history's own checks say so)."""
        try:
            f = open(path.with_name(path.name + ".lock"), "a+b")  # noqa: SIM115 (kept open)
        except OSError:
            return True
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        except OSError:  # a file system without locks: go on as before
            pass
        self._lock_file = f
        return True

    @staticmethod
    def _sentence(e: HistoryError) -> str:
        return f"{e} Training still works; runs not written down are shown until the server stops."

    def _write(self, method: str, *args, **kwargs):
        """One write to the history; a failure becomes `problem`, never a failed run. Ends
        not yet written (a full disk, a locked file) are written first: a run that ended is
        not left "running" in the history once writing works again, and the sentence goes."""
        if self.store is None or self.closing:
            return None
        with self._writing:
            try:
                for run_id, end in list(self._endings.items()):
                    self.store.update_run(run_id, **end)
                    del self._endings[run_id]
                done = getattr(self.store, method)(*args, **kwargs) if method else None
            except HistoryError as e:
                self.problem, self._failed_write = self._sentence(e), True
                return None
            if self._failed_write:
                self.problem, self._failed_write = None, False
            return done

    def check(self, force: bool = False) -> None:
        """At most every CHECK_SECONDS (always with `force`): is the file at the history's
        path still the one opened (see RunStore.moved), and can the ends not yet written
        be written now? Cheap: a stat of the path, and writes only when some are due."""
        if self.store is None or self.closing:
            return
        now = time.monotonic()
        if not force and now - self._checked < CHECK_SECONDS:
            return
        if not self._checking.acquire(blocking=False):
            return  # another thread is checking
        try:
            self._checked = now
            self._check_file()
            if self._endings:
                self._write("")
            if self._notice_until and now > self._notice_until and not self._failed_write:
                self.problem, self._notice_until = None, 0.0
        finally:
            self._checking.release()

    def _check_file(self) -> None:
        name = self.store.path.name
        moved = self.store.moved()
        if moved == "deleted":
            try:
                self.store.recreate()
                n = len(self.store.runs())
            except HistoryError as e:  # tried again at the next check
                self._failed_write = False
                self.problem = (
                    f"The run history file ({name}) was deleted while the server ran and "
                    f"could not be written again: {e} Runs are shown until the server stops."
                )
                if self._moved != "deleted":
                    log.warning("run history %s deleted; writing it again failed: %s", name, e)
                    self._moved = "deleted"
                return
            self._moved = None
            self._failed_write = False
            self.problem = (
                f"The run history file ({name}) was deleted while the server ran; it has been "
                f"written again with the {n} runs this server holds."
            )
            self._notice_until = time.monotonic() + NOTICE_SECONDS
            log.warning("run history %s deleted while the server ran; written again", name)
        elif moved == "replaced":
            if self._moved != "replaced":
                log.warning("run history %s replaced by another file while the server ran", name)
                self._moved = "replaced"
                with contextlib.suppress(HistoryError):  # the new file must not read our log
                    self.store.detach()
            if self.problem is None:
                self.problem = (
                    f"The run history file ({name}) was replaced by another while the server "
                    "ran; this server keeps writing to the one it opened, whose runs are lost "
                    "when it stops: restart the server to use the new file."
                )

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
                curves = self.store.losses(run_id)[1], self.store.accuracies(run_id)
            except HistoryError as e:  # a notice: it goes when a read works, or in time
                self.problem = self._read_problem = (
                    f"A past run's curves could not be read: {e} They are left out."
                )
                self._notice_until = time.monotonic() + NOTICE_SECONDS
                return [], []
            if self._read_problem is not None and self.problem == self._read_problem:
                self.problem, self._notice_until = None, 0.0
            self._read_problem = None
            return curves

        return read

    def add_run(self, recipe: Recipe, device: str, owner: str) -> int | None:
        """The new run's id in the history, or None if it could not be written."""
        return self._write("add_run", recipe, device, owner)

    def delete_run(self, run_id: int) -> None:
        self._write("delete_run", run_id)

    def __call__(self, run, event: Event) -> None:
        """A run's event (a Run's listener): write it down."""
        self.check()
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
                end = dict(status=status, message=message, out=out, ended=time.time())
                self._endings[run.id] = end
                self._write("")  # written with the next write if it fails now

    def close(self) -> None:
        if self.store is not None:
            if self._endings:
                self._write("")  # a last try for ends not yet written
            self.store.close()
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._lock_file.close()  # and with it the lock
            self._lock_file = None
