"""Private files of the local stack: folders 0700, files 0600, never written through a link.

The data folder holds every shadow (``shadows.sqlite3``), the broker's password hashes and
the record of the running stack. Another user of the machine must not read them, and a link
planted where pyiot writes must not make pyiot overwrite (or chmod) some other file. So
folders are made (or tightened to) 0700 and must be real folders owned by this user, and
files are written to a fresh temporary name in that folder and renamed over the target:
``rename`` replaces a link itself instead of following it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from pyiot.errors import PyiotError


class UnsafePath(PyiotError, RuntimeError):
    """A folder or file pyiot writes is a link, or belongs to another user."""

    what = "unsafe path"


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a folder only its owner can enter; return it.

    An existing folder must be a real folder (not a link) owned by this user; group and
    others lose their access to it.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePath(f"{path} is a symbolic link; pyiot keeps its files in a real folder")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{path} is not a folder")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise UnsafePath(f"{path} belongs to another user (uid {info.st_uid})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file: a new temporary file renamed over it."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    # mkstemp creates the file 0600 with O_EXCL (a planted link makes it fail, not follow).
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def open_private(path: Path, flags: int = os.O_RDWR) -> int:
    """Open (creating it 0600) a file that must not be a link; return the descriptor."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags | os.O_CREAT | nofollow | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as err:
        if os.path.islink(path):
            raise UnsafePath(f"{path} is a symbolic link; remove it") from None
        raise err
