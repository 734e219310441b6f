"""Files a user names are opened only when they are regular files of a bounded size."""

import os
import threading

import pytest

from mlp_core.files import read_regular_file


class Refused(ValueError):
    pass


def test_regular_file_is_read(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"hello")
    assert read_regular_file(tmp_path / "a.bin", 10, Refused) == b"hello"


@pytest.mark.parametrize("name", ["/dev/zero", "/dev/null", "/tmp"])
def test_devices_and_folders_are_refused_without_reading(name):
    with pytest.raises(Refused, match="not a regular file"):
        read_regular_file(name, 10, Refused)


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    done = []
    t = threading.Thread(target=lambda: done.append(_refusal(fifo)), daemon=True)
    t.start()
    t.join(5)
    assert done == ["The file pipe.png is not a regular file, so it was not opened."]


def _refusal(path):
    try:
        read_regular_file(path, 10, Refused)
    except Refused as e:
        return str(e)


def test_too_large_is_refused_and_names_no_folder(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"x" * 2_000_000)
    with pytest.raises(Refused) as e:
        read_regular_file(tmp_path / "big.bin", 2**20, Refused, "model file")
    assert str(e.value) == "The model file big.bin is larger than 1 MB."
    assert str(tmp_path) not in _refusal(tmp_path / "absent.bin")
