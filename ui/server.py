"""The server's own state, behind functions: the models folder, the trainer, threads,
and the memory that uploads hold.

Nothing is read or set at import: `serve()` (called by dashboard.py on every run, once in
effect) sets the process up, and `models_dir()` reads MLP_MODELS_DIR when asked, so tests
configure the server by the environment alone.
"""

import contextlib
import ctypes
import gc
import hashlib
import logging
import multiprocessing
import os
import secrets
import sys
import threading
import time
from pathlib import Path

import streamlit as st
import torch
from streamlit.runtime import Runtime
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from mlp_core import mnist_available
from mlp_core.service import Trainer

REPO = Path(__file__).resolve().parents[1]


def models_dir() -> Path:
    """Where models are saved and listed (MLP_MODELS_DIR, else the repository's models/)."""
    return Path(os.environ.get("MLP_MODELS_DIR", REPO / "models"))


@st.cache_resource
def serve() -> None:
    """Set this process up for serving, once: torch's threads, the heap, the upload sweeper.

    A training run shares the machine with this web server and the browsers watching it.
    With torch's default of one thread per core, every op then waits for a core that is busy
    elsewhere: on 2 cores, one epoch took 44 s instead of 5 s while a browser watched. So the
    dashboard leaves one core free (the CLI keeps torch's default).
    """
    torch.set_num_threads(max(1, min(torch.get_num_threads(), len(os.sched_getaffinity(0)) - 1)))
    # the server's own thread (health checks, websockets, uploads) needs the interpreter for
    # a moment at a time; while page threads compute, it waits for one to hand it over: at
    # most this long (Python's default is 5 ms) per handover
    sys.setswitchinterval(0.001)
    _collect_all()
    _return_freed_memory_to_the_system()
    start_upload_sweeper()


def _collect_all() -> None:
    """Keep Python's garbage collector from pausing the server for a third of a second.

    A full collection walks every object the process holds, and a server that imported
    torch, pandas and Streamlit holds millions: with visitors uploading, full collections
    came every few seconds and each stopped every thread for 200-700 ms (health checks
    waited up to 0.9 s). What exists once the server is up (modules, the shipped model)
    lives as long as the server; `gc.freeze` sets it aside, so collections walk only what
    visitors' pages made since. This collects everything, frozen objects included (the
    first visitors' sessions began before the first freeze), then freezes what is left: at
    start-up, and when visitors leave (the sweeper), never per page run.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


MAX_FILES_PER_UPLOAD = 20  # pictures read from one upload
MAX_SESSION_UPLOAD_BYTES = 50 * 2**20  # uploaded bytes one browser session may hold


def _trim_heap() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim; else nothing).

    An upload arrives in many small pieces, which land in the heap between other objects;
    once freed, their pages stay with the process unless trimmed.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _return_freed_memory_to_the_system() -> None:
    """Let freed uploads go back to the operating system, not stay in the server's heap.

    glibc serves allocations above a threshold with their own mmap, returned on free; but
    after each such free it raises the threshold (up to 32 MB), so the next uploads (a few
    MB each) land in the heap, which rarely shrinks: the server kept 2.7 GB after three
    browsers uploaded 750 MB and left. Fixing the threshold at 1 MB keeps every upload in
    its own mapping. Elsewhere (not glibc) this does nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 2**20)  # M_MMAP_THRESHOLD


SWEEP_SECONDS = 2.0  # how often departed browsers and unclaimed uploads are looked for
UNCLAIMED_SECONDS = 15.0  # an upload no page has read by then, its session idle, is freed


def upload_limits() -> tuple[int, int, int]:
    """What the upload endpoint holds at most: files and bytes per session, bytes in all.

    Per session: the Predict page's two uploaders with room for the page to say what it
    dropped (2 x MAX_FILES_PER_UPLOAD + 1 files; MAX_SESSION_UPLOAD_BYTES and one file more);
    in all, MLP_MAX_UPLOADS_MB (default 1024).
    """
    file_mb = int(st.get_option("server.maxUploadSize"))
    per_session = MAX_SESSION_UPLOAD_BYTES + file_mb * 2**20
    total = int(os.environ.get("MLP_MAX_UPLOADS_MB", "1024")) * 2**20
    return 2 * MAX_FILES_PER_UPLOAD + 1, per_session, total


class LimitedUploads(MemoryUploadedFileManager):
    """Streamlit's upload store, with limits at the endpoint and a sweep of unclaimed files.

    Any session can PUT files to /_stcore/upload_file/<session>/<id>, whatever page it is
    on; the Predict page's limits run only when that page runs. Here every upload is
    counted as it arrives: beyond upload_limits() it is refused (HTTP 413, one sentence) and
    not kept. A file is claimed when a page reads it (an uploader's value names it); files
    that no page claimed are freed once their session has uploaded nothing for
    UNCLAIMED_SECONDS (free_unclaimed, called by the sweeper).

    Streamlit creates its store before the app runs and its routes keep that object, so
    guard_upload_endpoint turns the running store into this class in place.
    """

    def _start_limits(self) -> None:
        self._limits_lock = threading.Lock()
        self._claimed: dict[str, set[str]] = {}
        self._last_upload: dict[str, float] = {}

    def add_file(self, session_id, file) -> None:
        from starlette.exceptions import HTTPException  # the endpoint's own refusal

        files, per_session, total = upload_limits()
        with self._limits_lock:  # one upload counted at a time
            with self._lock:  # the store's own lock: page threads and the sweeper remove
                held = dict(self.file_storage.get(session_id, {}))
                everyone = sum(len(f.data) for s in self.file_storage.values() for f in s.values())
            old = held.pop(file.file_id, None)
            mine = sum(len(f.data) for f in held.values()) + len(file.data)
            everyone += len(file.data) - (len(old.data) if old is not None else 0)
            if len(held) + 1 > files or mine > per_session:
                raise HTTPException(
                    413,
                    f"This browser holds as many uploads as it may ({files} files, "
                    f"{per_session // 2**20} MB); remove some first.",
                )
            if everyone > total:
                raise HTTPException(
                    413, "The server holds as many uploads as it may; try again in a minute."
                )
            super().add_file(session_id, file)
            self._last_upload[session_id] = time.monotonic()

    def get_files(self, session_id, file_ids):
        found = super().get_files(session_id, file_ids)
        with self._limits_lock:
            self._claimed.setdefault(session_id, set()).update(f.file_id for f in found)
        return found

    def remove_session_files(self, session_id) -> None:
        super().remove_session_files(session_id)
        with self._limits_lock:
            self._claimed.pop(session_id, None)
            self._last_upload.pop(session_id, None)

    def free_unclaimed(self, now: float | None = None) -> int:
        """Free the files no page claimed of sessions idle for UNCLAIMED_SECONDS; how many."""
        now = time.monotonic() if now is None else now
        freed = 0
        with self._limits_lock:
            idle = [
                sid for sid, last in self._last_upload.items() if now - last >= UNCLAIMED_SECONDS
            ]
            for sid in idle:
                claimed = self._claimed.get(sid, set())
                with self._lock:
                    unclaimed = [i for i in self.file_storage.get(sid, {}) if i not in claimed]
                for file_id in unclaimed:
                    self.remove_file(sid, file_id)  # takes the store's lock itself
                freed += len(unclaimed)
                del self._last_upload[sid]
            for sid in [sid for sid in self._claimed if sid not in self.file_storage]:
                del self._claimed[sid]
        return freed


def guard_upload_endpoint(mgr) -> LimitedUploads | None:
    """Put the limits on Streamlit's running upload store (see LimitedUploads), once."""
    if isinstance(mgr, LimitedUploads):
        return mgr
    if type(mgr) is not MemoryUploadedFileManager:
        return None  # not the store this was written for: left as it is
    LimitedUploads._start_limits(mgr)  # its attributes first: the endpoint may call at once
    mgr.__class__ = LimitedUploads
    return mgr


# -- the parts of Streamlit that have no public API, and that this server relies on ----------
# Pinned in requirements.txt; tests/test_streamlit_internals.py checks each on that version
# and what it does for us. If an upgrade renames one, the server says so once in its log
# (the uploads of departed browsers would stay in memory; every reload would be a new owner).


def _decode_xsrf_cookie(value: str) -> bytes | None:
    """The random secret in Streamlit's XSRF cookie (None if absent or unreadable)."""
    from streamlit.web.server.starlette.starlette_app_utils import decode_xsrf_token_string

    token, _ = decode_xsrf_token_string(value)
    return token


def _expired_sessions(runtime: Runtime) -> list:
    """Sessions kept past their TTL, taken out of Streamlit's storage (to be shut down)."""
    return runtime._session_mgr._session_storage._cache.expire()


def _live_session_ids(runtime: Runtime) -> set[str]:
    return {info.session.id for info in runtime._session_mgr.list_sessions()}


def missing_internals(runtime: Runtime | None = None) -> list[str]:
    """The private Streamlit parts above that this version lacks (empty when all are there).

    Without a runtime (AppTest, tests), checks the classes a server would use.
    """
    from streamlit.runtime.memory_session_storage import MemorySessionStorage
    from streamlit.web.server.starlette import starlette_app_utils

    missing = []
    if not callable(getattr(starlette_app_utils, "decode_xsrf_token_string", None)):
        missing.append("starlette_app_utils.decode_xsrf_token_string")
    storage = MemorySessionStorage()
    if runtime is not None:
        storage = getattr(getattr(runtime, "_session_mgr", None), "_session_storage", None)
        if storage is None:
            missing.append("Runtime._session_mgr._session_storage")
    if storage is not None and not callable(
        getattr(getattr(storage, "_cache", None), "expire", None)
    ):
        missing.append("MemorySessionStorage._cache.expire")
    for name in ("file_storage", "remove_session_files", "remove_file"):
        if not hasattr(MemoryUploadedFileManager("/_stcore/upload_file"), name):
            missing.append(f"MemoryUploadedFileManager.{name}")
    return missing


_WARNED = threading.Event()


def warn_of_missing_internals(runtime: Runtime | None = None) -> list[str]:
    """Log one warning, once per server, naming any private Streamlit part that is missing."""
    missing = missing_internals(runtime)
    if missing and not _WARNED.is_set():
        _WARNED.set()
        logging.getLogger(__name__).warning(
            "This Streamlit version lacks %s: uploads of departed browsers may stay in "
            "memory, and a reload may count as a new browser. Install the pinned version "
            "(requirements.txt).",
            ", ".join(missing),
        )
    return missing


def _sweep_departed_uploads_forever() -> None:
    """Free the uploaded files of sessions that no longer exist, every SWEEP_SECONDS.

    Streamlit keeps a departed browser's session for server.disconnectedSessionTTL
    seconds, in case it reconnects, and then forgets it without closing it: its state and
    uploads would stay in the server's memory for good (three browsers that uploaded
    750 MB and left cost the server 2.7 GB until restart). This closes expired sessions,
    frees any upload whose session is gone and the uploads no page claimed (see
    LimitedUploads). (It reads Streamlit's session storage, which has no public API for
    this; any failure here is ignored.)
    """
    warn_of_missing_internals(Runtime.instance())
    while True:
        time.sleep(SWEEP_SECONDS)
        with contextlib.suppress(Exception):  # never let housekeeping take the server down
            runtime = Runtime.instance()
            # sessions past their TTL: closed properly (state, uploads), not merely forgotten
            expired = _expired_sessions(runtime)
            for _, info in expired:
                info.session.shutdown()
            departed = sweep_uploads(runtime)
            forgot = [forget(_live_session_ids(runtime)) for forget in list(_FORGETTERS)]
            if expired or departed or any(forgot):
                _collect_all()  # a session's objects refer to each other: free them now
                _trim_heap()


_FORGETTERS: list = []  # forget(live session ids) -> whether it freed anything


def when_sessions_leave(forget) -> None:
    """Have the sweeper call `forget(live_session_ids)` every SWEEP_SECONDS, to free what
    sessions that no longer exist held (it returns whether it freed anything)."""
    if forget not in _FORGETTERS:
        _FORGETTERS.append(forget)


def sweep_uploads(runtime: Runtime, now: float | None = None) -> int:
    """Free the uploads of sessions that no longer exist and the unclaimed uploads of idle
    ones (see LimitedUploads); how many sessions or files were freed."""
    mgr = runtime.uploaded_file_mgr
    if not isinstance(mgr, MemoryUploadedFileManager):
        return 0
    live = _live_session_ids(runtime)
    departed = [sid for sid in list(mgr.file_storage) if sid not in live]
    for session_id in departed:
        mgr.remove_session_files(session_id)
    unclaimed = mgr.free_unclaimed(now) if isinstance(mgr, LimitedUploads) else 0
    return len(departed) + unclaimed


@st.cache_resource
def start_upload_sweeper() -> threading.Thread | None:
    """One sweeper thread per server (none under AppTest, which has no Runtime)."""
    if not Runtime.exists():
        return None
    if guard_upload_endpoint(Runtime.instance().uploaded_file_mgr) is None:
        logging.getLogger(__name__).warning(
            "This Streamlit version's upload store is not the one ui/server.py limits: "
            "uploads are limited only where the Predict page reads them. Install the pinned "
            "version (requirements.txt)."
        )
    thread = threading.Thread(target=_sweep_departed_uploads_forever, daemon=True)
    thread.start()
    return thread


_HEAVY = threading.Lock()


@contextlib.contextmanager
def one_at_a_time():
    """Page work that keeps the interpreter busy (reading and classifying a picture, drawing
    its charts), done by one page thread at a time.

    Python runs one thread at a time. Eight visitors' page threads computing at once leave
    the server's own thread (health checks, websockets, uploads) queueing behind all eight
    for every step it takes: health checks took up to 2.5 s. Taking turns costs no speed
    (the threads could not compute side by side anyway) and keeps the server answering.
    """
    with _HEAVY:
        yield


def limit_uploads(files: list) -> tuple[list, str | None]:
    """The uploaded files this page will read, and a sentence if some were dropped.

    At most MAX_FILES_PER_UPLOAD files and MAX_SESSION_UPLOAD_BYTES in all; the rest are
    removed from the server's memory at once (see keep_only_uploads).
    """
    kept, total = [], 0
    for f in files or []:
        if len(kept) < MAX_FILES_PER_UPLOAD and total + f.size <= MAX_SESSION_UPLOAD_BYTES:
            kept.append(f)
            total += f.size
    dropped = len(files or []) - len(kept)
    if not dropped:
        return kept, None
    return kept, (
        f"Only the first {len(kept)} pictures were read: one upload takes at most "
        f"{MAX_FILES_PER_UPLOAD} pictures and {MAX_SESSION_UPLOAD_BYTES // 2**20} MB in all. "
        "Remove some and add the others after."
    )


def keep_only_uploads(files: list) -> None:
    """Free every file this session uploaded except `files` (call after the page's last
    uploader): files beyond the limits, and any a forged request sent that no widget
    shows, leave the server's memory now rather than when the session ends."""
    start_upload_sweeper()
    ctx = get_script_run_ctx()
    mgr = getattr(ctx, "uploaded_file_mgr", None)
    if not isinstance(mgr, MemoryUploadedFileManager):
        return
    keep = {f.file_id for f in files if f is not None}
    for file_id in list(mgr.file_storage.get(ctx.session_id, {})):
        if file_id not in keep:
            mgr.remove_file(ctx.session_id, file_id)


def history_path() -> Path:
    """The run history's SQLite file (MLP_HISTORY, else runs.sqlite beside the models folder)."""
    return Path(os.environ.get("MLP_HISTORY", models_dir().parent / "runs.sqlite"))


@st.cache_resource
def trainer() -> Trainer:
    """The server's queue of runs, shared by every session: runs train in a worker process
    (MLP_WORKER=thread keeps them in this process) and are written to the run history."""
    if multiprocessing.parent_process() is not None:  # a worker, or any child process
        raise RuntimeError("Only the server's own process opens the run history.")
    kind = "thread" if os.environ.get("MLP_WORKER") == "thread" else "process"
    return Trainer(
        models_dir=models_dir(),
        history=history_path(),
        worker=kind,
        teacher_password=teacher_password(),
    )


def teacher_password() -> str | None:
    """The teacher password: MLP_TEACHER_PASSWORD, else `teacher_password` in Streamlit's
    secrets (.streamlit/secrets.toml); None (no teacher) unless one is set."""
    if password := os.environ.get("MLP_TEACHER_PASSWORD"):
        return password
    with contextlib.suppress(Exception):  # no secrets file: no teacher
        password = st.secrets.get("teacher_password")
        return password if isinstance(password, str) and password else None
    return None


def browser() -> str:
    """This browser's owner token: who may stop, cancel and delete the runs it starts.

    Taken from the browser's XSRF cookie, a random secret the server gave it, which
    survives reloads and server restarts (only its hash is kept, and never shown); where
    there is no such cookie (XSRF protection off, tests), a random token for this session.
    """
    if "browser_owner" in st.session_state:  # the cookie is the session's from its start
        return st.session_state["browser_owner"]
    token = None
    cookie = st.context.cookies.get("_streamlit_xsrf")
    if cookie:
        warn_of_missing_internals()
    with contextlib.suppress(Exception):  # absent, forged or unreadable: a session token
        token = _decode_xsrf_cookie(cookie or "")
    if not token or len(token) < 16:
        if "browser_token" not in st.session_state:
            st.session_state["browser_token"] = secrets.token_bytes(16)
        token = st.session_state["browser_token"]
    owner = st.session_state["browser_owner"] = owner_of(token)
    return owner


def address() -> str | None:
    """This session's network address, as the connection gives it (`st.context.ip_address`;
    None where there is none, e.g. tests): a visitor can drop its cookies, not its address.
    Behind a NAT or a reverse proxy many visitors share one."""
    with contextlib.suppress(Exception):  # outside a session, or an older Streamlit
        ip = st.context.ip_address
        return str(ip)[:64] if ip else None
    return None


def owner_of(token: bytes) -> str:
    """The owner id a browser's token stands for (a hash: the token itself is never kept)."""
    return hashlib.sha256(b"mlp-owner:" + token).hexdigest()[:32]


def mnist_missing() -> str | None:
    """One sentence if MNIST is not on disk here, else None (no server folders in it)."""
    if mnist_available():
        return None
    return (
        "MNIST is not on this server and cannot be downloaded now: whoever runs it can set "
        "the MNIST_ROOT variable to a folder that holds MNIST/raw/ and restart the app."
    )


# Shared by the Samples and Predict pages: a model chooser, cached predictions over MNIST,
# and the pictures and charts that show what a model thinks.
