"""The private parts of Streamlit the server relies on exist on the pinned version and do what
we use them for; when one is missing the server says so once (ui/server.py).

Without them the sweeper could not free departed browsers' uploads (2.7 GB kept, measured
before it existed) and every reload would be a new owner of no runs; both would fail
silently, since the server never lets housekeeping raise.
"""

import logging
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
