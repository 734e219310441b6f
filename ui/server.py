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
from mlp_core.trainer import Trainer

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


SWEEP_SECONDS = 5.0  # how often uploads of departed browsers are looked for


def _sweep_departed_uploads_forever() -> None:
    """Free the uploaded files of sessions that no longer exist, every SWEEP_SECONDS.

    Streamlit keeps a departed browser's session for server.disconnectedSessionTTL
    seconds, in case it reconnects, and then forgets it without closing it: its state and
    uploads would stay in the server's memory for good (three browsers that uploaded
    750 MB and left cost the server 2.7 GB until restart). This closes expired sessions
    and frees any upload whose session is gone. (It reads Streamlit's session storage,
    which has no public API for this; any failure here is ignored.)
    """
    while True:
        time.sleep(SWEEP_SECONDS)
        with contextlib.suppress(Exception):  # never let housekeeping take the server down
            runtime = Runtime.instance()
            # sessions past their TTL: closed properly (state, uploads), not merely forgotten
            stored = runtime._session_mgr._session_storage._cache
            expired = stored.expire()
            for _, info in expired:
                info.session.shutdown()
            live = {info.session.id for info in runtime._session_mgr.list_sessions()}
            mgr = runtime.uploaded_file_mgr
            departed = []
            if isinstance(mgr, MemoryUploadedFileManager):
                departed = [sid for sid in list(mgr.file_storage) if sid not in live]
                for session_id in departed:
                    mgr.remove_session_files(session_id)
            forgot = [forget(live) for forget in list(_FORGETTERS)]
            if expired or departed or any(forgot):
                _collect_all()  # a session's objects refer to each other: free them now
                _trim_heap()


_FORGETTERS: list = []  # forget(live session ids) -> whether it freed anything


def when_sessions_leave(forget) -> None:
    """Have the sweeper call `forget(live_session_ids)` every SWEEP_SECONDS, to free what
    sessions that no longer exist held (it returns whether it freed anything)."""
    if forget not in _FORGETTERS:
        _FORGETTERS.append(forget)


@st.cache_resource
def start_upload_sweeper() -> threading.Thread | None:
    """One sweeper thread per server (none under AppTest, which has no Runtime)."""
    if not Runtime.exists():
        return None
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
    kind = "thread" if os.environ.get("MLP_WORKER") == "thread" else "process"
    return Trainer(models_dir=models_dir(), history=history_path(), worker=kind)


def browser() -> str:
    """This browser's owner token: who may stop, cancel and delete the runs it starts.

    Taken from the browser's XSRF cookie, a random secret the server gave it, which
    survives reloads and server restarts (only its hash is kept, and never shown); where
    there is no such cookie (XSRF protection off, tests), a random token for this session.
    """
    if "browser_owner" in st.session_state:  # the cookie is the session's from its start
        return st.session_state["browser_owner"]
    token = None
    with contextlib.suppress(Exception):  # absent, forged or unreadable: a session token
        from streamlit.web.server.starlette.starlette_app_utils import (
            decode_xsrf_token_string,
        )

        token, _ = decode_xsrf_token_string(st.context.cookies.get("_streamlit_xsrf") or "")
    if not token or len(token) < 16:
        if "browser_token" not in st.session_state:
            st.session_state["browser_token"] = secrets.token_bytes(16)
        token = st.session_state["browser_token"]
    owner = st.session_state["browser_owner"] = owner_of(token)
    return owner


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
