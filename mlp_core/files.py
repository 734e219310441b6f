"""Reading a file a user named, without trusting the name.

A path typed on the command line or sent by a browser can name anything: `/dev/zero`
(endless bytes), a FIFO (a read that blocks forever), a directory, a 300 MB file. So a
file is opened only if it is a regular file, without blocking, and only after its size
is known to fit; the check is repeated on the open file, so a swap between the check
and the open cannot slip a device in.
"""

import os
import stat
from pathlib import Path


def regular_file_size(path, max_bytes: int, error: type[Exception], what: str = "file") -> int:
    """The size of `path` if it is a regular file of at most `max_bytes`, else raise `error`."""
    name = Path(os.fspath(path)).name or os.fspath(path)
    try:
        st = os.stat(path)  # stat never blocks, not even on a FIFO
    except OSError as e:
        raise error(f"Cannot read the {what} {name}: {e.strerror or e}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"The {what} {name} is not a regular file, so it was not opened.")
    if st.st_size > max_bytes:
        raise error(f"The {what} {name} is larger than {max_bytes // 2**20} MB.")
    return st.st_size


def read_regular_file(path, max_bytes: int, error: type[Exception], what: str = "file") -> bytes:
    """The bytes of `path` if it is a regular file of at most `max_bytes`; else raise
    `error` with one sentence naming the file by its base name only (never the server's
    folders)."""
    name = Path(os.fspath(path)).name or os.fspath(path)
    regular_file_size(path, max_bytes, error, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO cannot hang us
    except OSError as e:
        raise error(f"Cannot read the {what} {name}: {e.strerror or e}.") from None
    try:
        st = os.fstat(fd)  # the file actually opened, which may not be the one checked
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            raise error(f"The {what} {name} changed while it was opened; it was not read.")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"Cannot read the {what} {name}: {e.strerror or e}.") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew after the check
        raise error(f"The {what} {name} is larger than {max_bytes // 2**20} MB.")
    return data
