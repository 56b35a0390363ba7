"""Reading `.iot` source safely: regular files only, bounded in size, UTF-8.

`import "/dev/zero"` would otherwise fill memory, `import "/dev/stdin"` (or a fifo) would wait
forever, and an error message could quote any file the user can read. The file given on the
command line and every import go through `read_source`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pyiot.errors import PyiotError
from pyiot.lang import limits


class SourceError(PyiotError, OSError):
    """A file that cannot serve as `.iot` source; `reason` says why in a few words."""

    what = "unreadable .iot source"

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot read {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a fifo"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_source(path: str | Path, limit: int = limits.MAX_FILE_BYTES) -> str:
    """The text of a regular file of at most `limit` bytes; `SourceError` (an OSError) if not.

    Opened non-blocking, so a fifo or a terminal is refused at once instead of waited on; the
    size is checked on the open file and again while reading (files under /proc say 0 bytes).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as err:
        raise SourceError(path, err.strerror or str(err)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceError(path, f"{_kind(info.st_mode)}, not a regular file")
        too_big = f"larger than {limit:,} bytes, the most a .iot file may be"
        if info.st_size > limit:
            raise SourceError(path, too_big)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > limit:
                raise SourceError(path, too_big)
            chunks.append(chunk)
    except SourceError:
        raise
    except OSError as err:
        raise SourceError(path, err.strerror or str(err)) from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(path, f"not UTF-8 text (byte {err.start + 1})") from None
