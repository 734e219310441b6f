"""The private parts of Streamlit the server relies on exist on the pinned version and do what
we use them for; when one is missing the server says so once (ui/server.py).

Without them the sweeper could not free departed browsers' uploads (2.7 GB kept, measured
before it existed) and every reload would be a new owner of no runs; both would fail
silently, since the server never lets housekeeping raise.
"""

import asyncio
import logging
import time
import types

import pytest
from streamlit.runtime import memory_session_storage
from streamlit.runtime.memory_session_storage import MemorySessionStorage
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec
from streamlit.web.server.starlette import starlette_app_utils

from ui import server


def test_none_is_missing_on_the_pinned_version():
    assert server.missing_internals() == []


def test_the_xsrf_cookie_gives_back_the_secret_it_was_made_from():
    secret = bytes(range(16))
    cookie = starlette_app_utils.generate_xsrf_token_string(secret)
    assert cookie != secret.hex()  # masked: the cookie itself is not the secret
    assert server._decode_xsrf_cookie(cookie) == secret
    assert server._decode_xsrf_cookie(starlette_app_utils.generate_xsrf_token_string()) != secret


class Session:
    def __init__(self, id):
        self.id, self.closed = id, False

    def shutdown(self):
        self.closed = True


def fake_runtime(storage, active=()):
    """What the sweeper reads of a Runtime: its session manager and storage."""
    mgr = types.SimpleNamespace(
        _session_storage=storage,
        list_sessions=lambda: [types.SimpleNamespace(session=s) for s in active] + storage.list(),
    )
    return types.SimpleNamespace(_session_mgr=mgr)


def test_sessions_past_their_ttl_are_taken_out_of_the_storage_and_the_rest_kept():
    clock = [1000.0]
    storage = MemorySessionStorage(ttl_seconds=60)
    storage._cache._timer = lambda: clock[0]  # the TTL measured on a clock the test moves
    storage.save(types.SimpleNamespace(session=Session("old")))
    clock[0] += 30
    storage.save(types.SimpleNamespace(session=Session("new")))
    runtime = fake_runtime(storage, active=[Session("here")])
    assert server._live_session_ids(runtime) == {"here", "old", "new"}
    assert server._expired_sessions(runtime) == []
    clock[0] += 31  # "old" is 61 s old, "new" 31 s
    expired = server._expired_sessions(runtime)
    assert [(key, info.session.id) for key, info in expired] == [("old", "old")]
    assert server._live_session_ids(runtime) == {"here", "new"}
    assert server.missing_internals(runtime) == []


def test_uploads_are_held_per_session_and_freed_by_file_or_by_session():
    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    for session, file_id in [("a", "1"), ("a", "2"), ("b", "3")]:
        mgr.add_file(session, UploadedFileRec(file_id, f"{file_id}.png", "image/png", b"x" * 10))
    assert {s: sorted(files) for s, files in mgr.file_storage.items()} == {
        "a": ["1", "2"],
        "b": ["3"],
    }
    mgr.remove_file("a", "1")
    mgr.remove_session_files("b")
    assert {s: sorted(files) for s, files in mgr.file_storage.items() if files} == {"a": ["2"]}


@pytest.mark.parametrize(
    "remove, name",
    [
        (
            lambda mp: mp.delattr(starlette_app_utils, "decode_xsrf_token_string"),
            "starlette_app_utils.decode_xsrf_token_string",
        ),
        (
            lambda mp: mp.setattr(  # a storage whose cache cannot expire sessions
                memory_session_storage, "MemorySessionStorage", lambda: types.SimpleNamespace()
            ),
            "MemorySessionStorage._cache.expire",
        ),
    ],
)
def test_a_missing_part_is_named_and_logged_once(monkeypatch, caplog, remove, name):
    remove(monkeypatch)
    monkeypatch.setattr(server, "_WARNED", server.threading.Event())
    assert name in server.missing_internals()
    with caplog.at_level(logging.WARNING, logger=server.__name__):
        server.warn_of_missing_internals()
        server.warn_of_missing_internals()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and name in warnings[0].getMessage()


def test_a_runtime_without_session_storage_is_named():
    runtime = types.SimpleNamespace(_session_mgr=types.SimpleNamespace())
    assert "Runtime._session_mgr._session_storage" in server.missing_internals(runtime)


# -- the upload endpoint: limits as files arrive, unclaimed files swept ----------------------


class Endpoint:
    """Streamlit's own upload routes on a store, driven as the server would (ASGI, no network)."""

    def __init__(self, mgr, live=("visitor",)):
        from starlette.applications import Starlette
        from streamlit.web.server.starlette.starlette_routes import create_upload_routes

        self.mgr, self.live = mgr, set(live)
        runtime = types.SimpleNamespace(is_active_session=lambda sid: sid in self.live)
        self.app = Starlette(routes=create_upload_routes(runtime, mgr, None))
        self.xsrf = starlette_app_utils.generate_xsrf_token_string()

    def put(self, session: str, file_id: str, data: bytes) -> int:
        boundary = "b0undary"
        body = (
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="file"; filename="{file_id}.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        scope = {
            "type": "http",
            "method": "PUT",
            "path": f"/_stcore/upload_file/{session}/{file_id}",
            "raw_path": f"/_stcore/upload_file/{session}/{file_id}".encode(),
            "query_string": b"",
            "root_path": "",
            "scheme": "http",
            "server": ("testserver", 80),
            "headers": [
                (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-xsrftoken", self.xsrf.encode()),
                (b"cookie", f"_streamlit_xsrf={self.xsrf}".encode()),
            ],
        }
        sent, status = [{"type": "http.request", "body": body, "more_body": False}], []

        async def receive():
            return sent.pop(0) if sent else {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        asyncio.run(self.app(scope, receive, send))
        return status[0]


def held(mgr) -> dict[str, int]:
    return {s: sum(len(f.data) for f in files.values()) for s, files in mgr.file_storage.items()}


def test_uploads_from_a_session_that_never_opened_predict_are_capped_and_swept(monkeypatch):
    monkeypatch.setattr(server, "MAX_SESSION_UPLOAD_BYTES", 5 * 2**20)
    monkeypatch.setattr(server, "MAX_FILES_PER_UPLOAD", 20)
    files, per_session, _ = server.upload_limits()
    assert files == 41 and per_session == (5 + 10) * 2**20  # with server.maxUploadSize = 10
    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    endpoint = Endpoint(mgr)
    runtime = fake_runtime(MemorySessionStorage(), active=[Session("visitor")])
    runtime.uploaded_file_mgr = mgr
    assert server.guard_upload_endpoint(mgr) is mgr  # what serve() does to the running store

    # 100 files of 1 MB, as the hostile client sent them, from a session on the overview
    answers = [endpoint.put("visitor", f"f{i}", b"\0" * 2**20) for i in range(100)]
    assert answers == [204] * 15 + [413] * 85
    assert held(mgr) == {"visitor": 15 * 2**20}  # the rest was never kept

    # nothing read them: once the session has uploaded nothing for a while, they are freed
    now = time.monotonic()
    assert server.sweep_uploads(runtime, now) == 0  # not yet: it may still be uploading
    assert server.sweep_uploads(runtime, now + server.UNCLAIMED_SECONDS) == 15
    assert held(mgr) == {"visitor": 0}
    assert endpoint.put("visitor", "again", b"\0" * 2**20) == 204  # room again


def test_claimed_uploads_stay_and_the_whole_server_is_capped(monkeypatch):
    monkeypatch.setenv("MLP_MAX_UPLOADS_MB", "3")
    mgr = server.guard_upload_endpoint(MemoryUploadedFileManager("/_stcore/upload_file"))
    endpoint = Endpoint(mgr, live=("a", "b"))
    runtime = fake_runtime(MemorySessionStorage(), active=[Session("a"), Session("b")])
    runtime.uploaded_file_mgr = mgr
    assert [endpoint.put("a", f"a{i}", b"\0" * 2**20) for i in range(2)] == [204, 204]
    assert [endpoint.put("b", f"b{i}", b"\0" * 2**20) for i in range(2)] == [204, 413]
    assert [f.file_id for f in mgr.get_files("a", ["a0"])] == ["a0"]  # a page read it
    assert server.sweep_uploads(runtime, time.monotonic() + server.UNCLAIMED_SECONDS) == 2
    assert {s: sorted(f) for s, f in mgr.file_storage.items()} == {"a": ["a0"], "b": []}
    runtime._session_mgr.list_sessions = lambda: []  # both left: everything goes
    assert server.sweep_uploads(runtime) == 2 and not mgr.file_storage
