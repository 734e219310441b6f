"""The run history in SQLite: it survives a reopen, closes a crashed server's runs, and
turns every failure of the file into one plain sentence."""

import math
import os
import sqlite3
import threading
import time

import pytest

from mlp_core.recipe import Recipe
from mlp_core.service.runstore import (
    SCHEMA_VERSION,
    HistoryError,
    RunRow,
    RunStore,
    history_error,
)
from mlp_core.service.status import ENDED as TERMINAL


def one_sentence(e: HistoryError) -> str:
    text = str(e)
    assert text.endswith(".") and "\n" not in text and "/" not in text, text
    assert text[0].isupper() and text.count(". ") == 0, text
    return text


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "runs.sqlite", timeout=0.2)
    yield s
    s.close()


def test_everything_written_is_read_back_by_a_new_store(tmp_path):
    path = tmp_path / "runs.sqlite"
    deep = Recipe(hidden=(512, 256, 64), optimizer="sgd", lr=0.05, augment=False, seed=7)
    linear = Recipe(hidden=(), epochs=3)
    s = RunStore(path)
    a = s.add_run(deep, "cpu", owner="abc123", created=1000.0)
    b = s.add_run(linear, "cuda:0")
    s.update_run(
        a,
        status="finished",
        message="Done.",
        started=1001.5,
        ended=1100.25,
        elapsed=98.75,
        epoch=40,
        step=18760,
        total_steps=18760,
        seen=2_400_000,
        test_accuracy=0.9871,
        out="models/deep.pt",
    )
    s.add_losses(a, [1, 2, 3], [2.3, 1.9, float("nan")])  # a diverging batch is kept
    s.add_losses(a, [4], [math.inf])
    s.add_accuracy(a, 2, 0.97)
    s.add_accuracy(a, 1, 0.95)
    s.update_run(b, status="running")
    expected = s.runs()
    s.close()

    s = RunStore(path)
    got = s.runs()
    assert got == expected and [r.id for r in got] == [a, b]
    ra, rb = got
    assert ra.recipe == deep and ra.recipe.hidden == (512, 256, 64)
    assert rb.recipe == linear and rb.recipe.hidden == ()
    assert isinstance(ra.recipe, Recipe) and isinstance(ra, RunRow)
    assert (ra.owner, ra.device, ra.status, ra.message) == ("abc123", "cpu", "finished", "Done.")
    assert (ra.created, ra.started, ra.ended, ra.elapsed) == (1000.0, 1001.5, 1100.25, 98.75)
    assert (ra.epoch, ra.step, ra.total_steps, ra.seen) == (40, 18760, 18760, 2_400_000)
    assert (ra.test_accuracy, ra.out) == (0.9871, "models/deep.pt")
    assert (rb.owner, rb.status, rb.started, rb.test_accuracy, rb.out) == (
        "",
        "running",
        None,
        None,
        None,
    )
    assert time.time() - rb.created < 60  # created defaults to now
    steps, losses = s.losses(a)
    assert steps == [1, 2, 3, 4] and losses[:2] == [2.3, 1.9]
    assert math.isnan(losses[2]) and losses[3] == math.inf
    assert s.accuracies(a) == [0.95, 0.97]  # by epoch, not by arrival
    assert s.losses(b) == ([], []) and s.accuracies(b) == []
    assert s.run(b) == rb and s.run(9999) is None
    s.close()


def test_wal_mode_and_schema_version(store):
    raw = sqlite3.connect(store.path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
    raw.close()
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_update_run_refuses_unknown_fields(store):
    rid = store.add_run(Recipe(), "cpu")
    for bad in ("id", "recipe", "colour"):
        with pytest.raises(ValueError, match=bad):
            store.update_run(rid, **{bad: 1})
    store.update_run(rid)  # nothing to change
    store.update_run(12345, status="finished")  # no such run: nothing happens
    assert store.run(rid).status == "queued"


def test_after_restart_closes_the_previous_servers_runs(store):
    ids = {st: store.add_run(Recipe(), "cpu", status=st) for st in ("queued", "starting")}
    ids["running"] = store.add_run(Recipe(), "cpu")
    store.update_run(ids["running"], status="running", started=5.0)
    ids["finished"] = store.add_run(Recipe(), "cpu")
    store.update_run(ids["finished"], status="finished", message="Done.", ended=9.0)
    before = time.time()
    assert store.after_restart() == (2, 1)
    for st in ("starting", "running"):
        r = store.run(ids[st])
        assert r.status == "interrupted" and r.ended >= before
        assert (
            r.message == "The server stopped while this run was training; its model was not saved."
        )
    r = store.run(ids["queued"])
    assert r.status == "cancelled" and r.ended >= before
    assert r.message == "Cancelled: the server restarted before this run started."
    r = store.run(ids["finished"])
    assert (r.status, r.message, r.ended) == ("finished", "Done.", 9.0)
    assert {r.status for r in store.runs()} <= set(TERMINAL)
    assert store.after_restart() == (0, 0)


def test_delete_run_removes_its_curves_and_its_id_is_not_reused(store):
    keep = store.add_run(Recipe(), "cpu")
    gone = store.add_run(Recipe(), "cpu")
    for rid in (keep, gone):
        store.add_losses(rid, [1, 2], [0.5, 0.4])
        store.add_accuracy(rid, 1, 0.9)
    store.delete_run(gone)  # the newest run
    assert store.run(gone) is None and [r.id for r in store.runs()] == [keep]
    assert store.losses(gone) == ([], []) and store.accuracies(gone) == []
    raw = sqlite3.connect(store.path)
    for table in ("losses", "accuracies"):
        assert raw.execute(
            f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (gone,)
        ).fetchone() == (0,)
    raw.close()
    assert store.losses(keep) == ([1, 2], [0.5, 0.4]) and store.accuracies(keep) == [0.9]
    assert store.add_run(Recipe(), "cpu") > gone
    store.add_losses(gone, [3], [0.3])  # a trainer still writing to a deleted run: dropped
    store.add_accuracy(gone, 2, 0.95)
    assert store.losses(gone) == ([], []) and store.accuracies(gone) == []


def test_a_file_from_a_newer_version_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(HistoryError) as e:
        RunStore(path)
    assert "newer version" in one_sentence(e.value)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    raw.close()


def test_a_file_that_is_not_a_database_is_damaged(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes((b"not a database" * 300)[:4096])
    with pytest.raises(HistoryError) as e:
        RunStore(path)
    text = one_sentence(e.value)
    assert text == (
        "The run history file is damaged; move runs.sqlite away (or delete it) and restart "
        "to start a new history."
    )
    assert str(tmp_path) not in text


def test_a_read_only_file_and_folder_cannot_be_written(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes through chmod; test_read_only_connection covers the sentence")
    folder = tmp_path / "data"
    path = folder / "runs.sqlite"
    s = RunStore(path)
    s.add_run(Recipe(), "cpu")
    s.close()
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        with pytest.raises(HistoryError) as e:
            s = RunStore(path)
            s.add_run(Recipe(), "cpu")  # if opening worked, writing must not
        text = one_sentence(e.value)
        assert "read-only" in text or "cannot be opened" in text
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)


def test_read_only_connection(store):
    rid = store.add_run(Recipe(), "cpu")
    store._db.execute("PRAGMA query_only = ON")  # SQLite refuses writes: SQLITE_READONLY
    with pytest.raises(HistoryError) as e:
        store.update_run(rid, status="running")
    assert "read-only" in one_sentence(e.value)
    store._db.execute("PRAGMA query_only = OFF")
    store.update_run(rid, status="running")  # the failed write left no transaction open
    assert store.run(rid).status == "running"


def test_a_file_locked_by_another_program(store):
    rid = store.add_run(Recipe(), "cpu")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        # a write waits for the lock at most the store's timeout, then says so (it returns)
        assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 200  # the fixture's 0.2 s
        with pytest.raises(HistoryError) as e:
            store.add_run(Recipe(), "cpu")
        assert "locked by another program" in one_sentence(e.value)
        assert store.run(rid).status == "queued"  # WAL: reads go on while it is locked
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(store.runs()) == 1
    store.add_run(Recipe(), "cpu")  # works again once the other program lets go
    assert len(store.runs()) == 2


def test_a_full_disk(store):
    rid = store.add_run(Recipe(), "cpu")
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: full
    with pytest.raises(HistoryError) as e:
        store.add_losses(rid, list(range(1, 20001)), [0.5] * 20000)
    assert "disk is full" in one_sentence(e.value)
    assert store.losses(rid) == ([], [])  # all or nothing
    store._db.execute("PRAGMA max_page_count = 1073741823")
    store.add_losses(rid, [1], [0.5])
    assert store.losses(rid) == ([1], [0.5])


def test_threads_writing_at_once_lose_nothing(store):
    ids = [store.add_run(Recipe(), "cpu") for _ in range(8)]
    errors = []

    def train(rid):
        try:
            for batch in range(200):
                store.add_losses(rid, [2 * batch + 1, 2 * batch + 2], [rid + 0.5, rid + 0.25])
                if batch % 50 == 0:
                    store.update_run(rid, step=2 * batch + 2, status="running")
                    store.runs()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=train, args=(rid,)) for rid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for rid in ids:
        steps, losses = store.losses(rid)
        assert steps == list(range(1, 401)) and losses == [rid + 0.5, rid + 0.25] * 200
        assert store.run(rid).step == 302


@pytest.mark.parametrize(
    "name, word",
    [
        ("SQLITE_BUSY", "locked"),
        ("SQLITE_LOCKED_SHAREDCACHE", "locked"),
        ("SQLITE_FULL", "disk is full"),
        ("SQLITE_READONLY_DIRECTORY", "read-only"),
        ("SQLITE_CORRUPT", "damaged"),
        ("SQLITE_NOTADB", "damaged"),
        ("SQLITE_CANTOPEN", "cannot be opened"),
        ("SQLITE_IOERR_WRITE", "could not be read or saved (SQLITE_IOERR_WRITE)"),
    ],
)
def test_every_sqlite_error_is_one_sentence(name, word):
    e = sqlite3.OperationalError("unable to open /srv/app/data/runs.sqlite")
    e.sqlite_errorname = name
    assert word in one_sentence(history_error(e))


@pytest.mark.parametrize(
    "e, word",
    [
        (sqlite3.OperationalError("database is locked"), "locked"),
        (sqlite3.OperationalError("database or disk is full"), "disk is full"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
        (sqlite3.DatabaseError("database disk image is malformed"), "damaged"),
        (OSError(28, "No space left on device", "/srv/data"), "disk is full"),
        (PermissionError(13, "Permission denied", "/srv/data"), "read-only"),
        (sqlite3.ProgrammingError("Cannot operate on a closed database."), "could not be read"),
    ],
)
def test_errors_without_a_name_are_told_by_their_text(e, word):
    assert word in one_sentence(history_error(e))


def test_a_folder_that_cannot_be_made_is_a_history_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(HistoryError) as e:
        RunStore(tmp_path / "file" / "runs.sqlite")  # its folder would be inside a file
    one_sentence(e.value)


def test_a_deleted_file_is_noticed_and_written_again_with_everything(tmp_path):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    rid = store.add_run(Recipe(), "cpu")
    store.add_losses(rid, [1, 2], [0.5, 0.25])
    assert store.moved() is None
    path.unlink()  # its write-ahead log is left at the path
    assert store.moved() == "deleted"
    store.update_run(rid, status="running")  # still written, to the deleted file
    store.recreate()
    assert store.moved() is None and path.exists()
    store.add_accuracy(rid, 1, 0.9)  # and now to the new one
    store.close()
    again = RunStore(path)
    assert [(r.id, r.status) for r in again.runs()] == [(rid, "running")]
    assert again.losses(rid) == ([1, 2], [0.5, 0.25]) and again.accuracies(rid) == [0.9]
    again.close()


def test_a_replaced_file_is_noticed_and_left_alone(tmp_path):
    path, other = tmp_path / "runs.sqlite", tmp_path / "restored.sqlite"
    store = RunStore(path)
    store.add_run(Recipe(), "cpu")
    RunStore(other).close()  # an empty history, moved over the open one
    other.replace(path)
    assert store.moved() == "replaced"
    store.detach()
    store.add_run(Recipe(), "cpu")  # written to the file it opened
    store.close()
    assert RunStore(path).runs() == []  # nothing of it in the file put there


def test_a_runs_end_written_while_another_thread_writes_is_written_once(tmp_path):
    # Stop pressed on a page while the worker's reader thread writes the run's progress: both
    # threads wrote the pending end and deleted it, and the second delete's KeyError killed
    # a thread (the reader: then the watchdog failed the stopped run)
    from mlp_core.service.events import Ended, Progressed
    from mlp_core.service.recorder import HistoryRecorder
    from mlp_core.service.status import RunStatus

    rec = HistoryRecorder(tmp_path / "runs.sqlite")
    rid = rec.add_run(Recipe(), "cpu", "you")
    run = type("FakeRun", (), {"id": rid})()
    update, inside, go, ends = rec.store.update_run, threading.Event(), threading.Event(), []

    def slow_update(run_id, **fields):  # the first write of the end waits inside the store
        if "ended" in fields:
            ends.append(fields["status"])
            if not inside.is_set():
                inside.set()
                assert go.wait(30)
        return update(run_id, **fields)

    rec.store.update_run = slow_update
    errors = []

    def tell(event):
        try:
            rec(run, event)
        except Exception as e:  # noqa: BLE001 (the failure this test looks for)
            errors.append(e)

    stopper = threading.Thread(target=tell, args=(Ended(RunStatus.STOPPED, "Stopped."),))
    stopper.start()
    assert inside.wait(30)
    reader = threading.Thread(target=tell, args=(Progressed([0.5], 1, 16, 0.1),))
    reader.start()
    reader.join(0.5)  # it waits for the write in progress (it used to write the end again)
    go.set()
    stopper.join(30)
    reader.join(30)
    assert not reader.is_alive() and not stopper.is_alive() and errors == []
    assert ends == [RunStatus.STOPPED]
    assert [r.status for r in rec.store.runs()] == [RunStatus.STOPPED]
    rec.close()
