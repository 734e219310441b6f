"""RunStore: the history of every training run, kept in one SQLite file.

A server that forgets its runs when it restarts loses a class's afternoon of work, so each
run, its per-batch losses and its per-epoch accuracies are written to disk as they happen.
SQLite keeps them in one file with no server of its own. In WAL mode (write-ahead log)
readers never wait for the writer: a chart can read a curve while a training thread appends
to it. `synchronous=NORMAL` makes a commit cheap (no flush to the disk per commit; a power
cut can lose the last commits, never corrupt the file), so every write is its own short
transaction. `PRAGMA user_version` holds the layout's version, so a file written by a newer
version of the app is refused rather than misread.

Everything that can go wrong with the file (locked, disk full, read-only, damaged) becomes a
HistoryError whose message is one sentence without the server's paths.
"""

import errno
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import UserError
from ..recipe import Recipe
from .status import RunStatus

SCHEMA_VERSION = 1

INTERRUPTED = "The server stopped while this run was training; its model was not saved."
CANCELLED = "Cancelled: the server restarted before this run started."

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a deleted run's id is never reused
    owner TEXT NOT NULL DEFAULT '',
    recipe TEXT NOT NULL,                  -- Recipe.to_dict() as JSON
    device TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    elapsed REAL NOT NULL DEFAULT 0,
    epoch INTEGER NOT NULL DEFAULT 0,
    step INTEGER NOT NULL DEFAULT 0,
    total_steps INTEGER NOT NULL DEFAULT 0,
    seen INTEGER NOT NULL DEFAULT 0,
    test_accuracy REAL,
    out TEXT
);
CREATE TABLE IF NOT EXISTS losses (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    loss REAL,                             -- NULL: NaN (SQLite stores NaN as NULL)
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accuracies (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    accuracy REAL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
"""


class HistoryError(UserError):
    """The run history file cannot be read or written; the message says why, in one sentence."""


@dataclass
class RunRow:
    """One run as stored."""

    id: int
    owner: str  # a hash of the browser token that started it ("" for scripts)
    recipe: Recipe
    device: str
    status: str  # a RunStatus value (status.py)
    message: str
    created: float  # time.time() when queued
    started: float | None
    ended: float | None
    elapsed: float  # seconds of training
    epoch: int  # epochs completed
    step: int  # batches done
    total_steps: int
    seen: int  # images seen (for images/second)
    test_accuracy: float | None
    out: str | None  # model file path


_COLUMNS = tuple(f.name for f in fields(RunRow))
UPDATABLE = frozenset(_COLUMNS) - {"id", "recipe"}


class RunStore:
    """The run history in the SQLite file `path`, safe to call from several threads.

    One connection, guarded by a lock: SQLite serialises writers anyway, and the lock keeps
    one thread's transaction from interleaving with another's. `timeout`: seconds a write
    waits for another program's lock before HistoryError. `_db` is the raw connection, for
    tests that need to provoke a failure (e.g. `PRAGMA max_page_count` for a full disk).
    """

    def __init__(self, path: str | Path, timeout: float = 2.0):
        self.path, self.timeout = Path(path), timeout
        self._lock = threading.Lock()
        self._db = self._open()
        self._file = _identity(self.path)  # (device, inode) of the file opened

    def _open(self) -> sqlite3.Connection:
        """A connection to the file at `path`, its layout checked and made."""
        timeout, db = self.timeout, None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=timeout, check_same_thread=False, isolation_level=None
            )
            db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            # read before changing anything: a newer file is left exactly as it is
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise HistoryError(
                    f"The run history was written by a newer version of this app "
                    f"(layout {version}, this one reads {SCHEMA_VERSION}); upgrade the app, "
                    f"or move {self.path.name} away to start a new history."
                )
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            db.executescript(  # one transaction: two servers starting at once agree
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
            return db
        except Exception as e:
            if db is not None:
                db.close()
            if isinstance(e, HistoryError):
                raise
            if isinstance(e, sqlite3.Error | OSError):
                raise history_error(e, self.path.name) from e
            raise

    # -- the file itself: still the one opened? ---------------------------------------------

    def moved(self) -> str | None:
        """`"deleted"` when no file is at `path` any more, `"replaced"` when another is (a
        restored copy, another history moved there); None while it is the file opened.
        An open file that was deleted is still written, and lost when the server stops."""
        now = _identity(self.path)
        if now is None:
            return "deleted"
        return "replaced" if now != self._file else None

    def recreate(self) -> None:
        """Write the history this store holds to `path` again (after `moved()` said
        "deleted"), and go on writing there. HistoryError if it cannot be written.

        Copied into a new file beside it, which is then moved into place. The deleted file's
        write-ahead log (runs.sqlite-wal, if it was left at the path) is this store's: closing
        the old connection checkpoints it into the deleted file and removes it, before the new
        file is opened, so the new file never reads a log that is not its own.
        """
        fresh = self.path.with_name(self.path.name + ".new")
        with self._lock:
            try:
                fresh.unlink(missing_ok=True)
                copy = sqlite3.connect(fresh)
                try:
                    self._db.backup(copy)
                finally:
                    copy.close()
                os.replace(fresh, self.path)
                self._db.close()
                self._db = self._open()  # until then, writes fail with a HistoryError
                self._file = _identity(self.path)
            except (sqlite3.Error, OSError) as e:
                raise history_error(e, self.path.name) from e

    def detach(self) -> None:
        """Write nothing more at `path` (after `moved()` said "replaced"): the write-ahead
        log this store keeps beside the path is emptied into the file it opened, and writes
        go on without one. SQLite does not remove that log when the file was renamed over,
        and a file opened there later would read this store's pages from it."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.execute("PRAGMA journal_mode = MEMORY")
            except sqlite3.Error as e:
                raise history_error(e, self.path.name) from e

    # -- writes: each one its own short transaction -------------------------------------

    def _write(self, do):
        """Run `do(db)` in one IMMEDIATE transaction (the write lock taken up front)."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                result = do(db)
                db.execute("COMMIT")
                return result
            except sqlite3.Error as e:
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise history_error(e, self.path.name) from e

    def _read(self, sql: str, args=()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise history_error(e, self.path.name) from e

    def add_run(
        self,
        recipe: Recipe,
        device: str,
        owner: str = "",
        status: str = RunStatus.QUEUED,
        created: float | None = None,
    ) -> int:
        """Store a new run; return its id (never one a deleted run had)."""
        text = json.dumps(recipe.to_dict())
        when = time.time() if created is None else created
        return self._write(
            lambda db: (
                db.execute(
                    "INSERT INTO runs (owner, recipe, device, status, created) VALUES (?,?,?,?,?)",
                    (owner, text, device, status, when),
                ).lastrowid
            )
        )

    def update_run(self, run_id: int, **changes) -> None:
        """Set any RunRow fields but id and recipe; a run deleted meanwhile is left alone."""
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"RunStore.update_run: unknown fields {sorted(unknown)}")
        if not changes:
            return
        names = list(changes)  # checked against UPDATABLE: safe to put in the SQL
        sql = f"UPDATE runs SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
        self._write(lambda db: db.execute(sql, [changes[n] for n in names] + [run_id]))

    def add_losses(self, run_id: int, steps: list[int], losses: list[float]) -> None:
        """Store per-batch losses (a step stored again replaces the old loss).

        A run deleted while it trains gets nothing written (no error for the trainer).
        """
        rows = list(zip(steps, losses, strict=True))
        if not rows:
            return

        def do(db):
            if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                db.executemany(
                    "INSERT OR REPLACE INTO losses (run_id, step, loss) VALUES (?,?,?)",
                    [(run_id, s, v) for s, v in rows],
                )

        self._write(do)

    def add_accuracy(self, run_id: int, epoch: int, accuracy: float) -> None:
        """Store the test accuracy after `epoch` (a run deleted meanwhile: nothing)."""
        self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO accuracies (run_id, epoch, accuracy) "
                "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)",
                (run_id, epoch, accuracy, run_id),
            )
        )

    def delete_run(self, run_id: int) -> None:
        """Forget the run, its losses and its accuracies (ON DELETE CASCADE)."""
        self._write(lambda db: db.execute("DELETE FROM runs WHERE id = ?", (run_id,)))

    def after_restart(self) -> tuple[int, int]:
        """Close the runs the previous server left unfinished; return (interrupted, cancelled).

        'starting' and 'running' runs become 'interrupted', 'queued' ones 'cancelled'; both
        get `ended` (now) if they had none.
        """
        now = time.time()

        def do(db):
            interrupted = db.execute(
                "UPDATE runs SET status = ?, message = ?, ended = COALESCE(ended, ?)"
                " WHERE status IN (?, ?)",
                (RunStatus.INTERRUPTED, INTERRUPTED, now, RunStatus.STARTING, RunStatus.RUNNING),
            ).rowcount
            cancelled = db.execute(
                "UPDATE runs SET status = ?, message = ?, ended = COALESCE(ended, ?)"
                " WHERE status = ?",
                (RunStatus.CANCELLED, CANCELLED, now, RunStatus.QUEUED),
            ).rowcount
            return interrupted, cancelled

        return self._write(do)

    # -- reads -----------------------------------------------------------------------------

    def runs(self) -> list[RunRow]:
        """Every run, oldest first."""
        rows = self._read(f"SELECT {', '.join(_COLUMNS)} FROM runs ORDER BY id")
        return [self._row(r) for r in rows]

    def run(self, run_id: int) -> RunRow | None:
        """The run `run_id`, or None if there is none."""
        rows = self._read(f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE id = ?", (run_id,))
        return self._row(rows[0]) if rows else None

    def losses(self, run_id: int) -> tuple[list[int], list[float]]:
        """(steps, losses) of the run, by step; a NaN loss comes back as nan."""
        rows = self._read("SELECT step, loss FROM losses WHERE run_id = ? ORDER BY step", (run_id,))
        return [s for s, _ in rows], [float("nan") if v is None else v for _, v in rows]

    def accuracies(self, run_id: int) -> list[float]:
        """The run's test accuracy after each epoch, by epoch."""
        rows = self._read(
            "SELECT accuracy FROM accuracies WHERE run_id = ? ORDER BY epoch", (run_id,)
        )
        return [float("nan") if v is None else v for (v,) in rows]

    def _row(self, r: tuple) -> RunRow:
        values = dict(zip(_COLUMNS, r))
        try:
            values["recipe"] = Recipe.from_dict(json.loads(values["recipe"]))
        except (ValueError, TypeError) as e:  # edited by hand, or damaged
            raise HistoryError(_damaged(self.path.name)) from e
        return RunRow(**values)

    def close(self) -> None:
        """Close the file (a second close does nothing)."""
        with self._lock:
            if self._db is not None:
                self._db.close()


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`; None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _damaged(name: str) -> str:
    return (
        f"The run history file is damaged; move {name} away (or delete it) and restart "
        "to start a new history."
    )


def history_error(e: Exception, name: str = "runs.sqlite") -> HistoryError:
    """The HistoryError for a sqlite3.Error or OSError: one sentence, no paths.

    `name`: the history file's name (not its path), for the sentences that say to move it.
    """
    code = getattr(e, "sqlite_errorname", None) or ""  # Python 3.11+, e.g. SQLITE_BUSY
    text = str(e).lower()
    if isinstance(e, OSError) and not isinstance(e, sqlite3.Error):
        code = {
            errno.ENOSPC: "SQLITE_FULL",
            errno.EROFS: "SQLITE_READONLY",
            errno.EACCES: "SQLITE_READONLY",
            errno.EPERM: "SQLITE_READONLY",
        }.get(e.errno, "")

    def kind(prefixes, words):
        return code.startswith(prefixes) or (not code and any(w in text for w in words))

    if kind(("SQLITE_BUSY", "SQLITE_LOCKED"), ("locked", "busy")):
        sentence = (
            "The run history is locked by another program; close it (or stop the other "
            "server using the same file) and try again."
        )
    elif kind(("SQLITE_FULL",), ("disk is full", "database or disk is full")):
        sentence = "The run history cannot be saved because the disk is full; free some space."
    elif kind(("SQLITE_READONLY", "SQLITE_PERM"), ("readonly", "read-only")):
        sentence = (
            "The run history cannot be written: the file or its folder is read-only; make "
            "them writable and restart the server."
        )
    elif kind(("SQLITE_CORRUPT", "SQLITE_NOTADB"), ("not a database", "malformed", "corrupt")):
        sentence = _damaged(name)
    elif kind(("SQLITE_CANTOPEN",), ("unable to open",)):
        sentence = (
            "The run history cannot be opened: its file or folder cannot be read or written "
            "by the server; check their permissions and restart."
        )
    else:
        detail = f" ({code})" if code else ""
        sentence = (
            f"The run history could not be read or saved{detail}; restart the server, and "
            f"move {name} away if it keeps happening."
        )
    return HistoryError(sentence)
