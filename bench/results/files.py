"""Files written whole or not at all: what a failed write (a full disk, a read-only folder) leaves is what was there.

Every output s2sbench writes beside the store -- a baseline, ``compare --markdown``, a report's pages and
figures -- goes through here. Each file is first written in full to a temporary name in its own folder
(where a full disk shows up), and only when every file of the set is written are they renamed into place
(a rename needs no free space). On failure the temporary files are removed, and so is a folder this call
created, and the error is one ``UserError`` line naming the path.

A file written here gets the mode a plain ``open(path, "w")`` would give it: the user's umask for a new file,
the old file's mode for one it replaces -- not ``tempfile.mkstemp``'s private 0600, which the rename would
carry into place and which made every report and baseline unreadable to the user's group.
"""

from __future__ import annotations

import os
import secrets
import stat

from bench.errors import UserError


def _temporary(path: str) -> tuple[int, str]:
    """A new, empty temporary file beside ``path`` -> (fd, its path), created with ``open``'s mode (see the module)."""
    folder, name = os.path.split(path)
    for _ in range(100):  # a name already taken (another writer) is tried again with another suffix
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)  # less the umask
        except FileExistsError:
            continue
        try:
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))  # replacing a file: keep its mode
        except FileNotFoundError:
            pass
        return fd, tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out (a short write is not an error; ENOSPC is)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_files(folder: str, files: dict[str, bytes | str], what: str) -> dict[str, str]:
    """Write ``files`` (name -> bytes, or text as UTF-8) into ``folder``, all of them or none. -> name -> path."""
    created: list[str] = []  # folders made here, innermost last
    staged: dict[str, str] = {}  # final path -> temporary path
    where = folder
    try:
        head = os.path.abspath(folder)
        while not os.path.exists(head):
            created.insert(0, head)
            head = os.path.dirname(head)
        os.makedirs(folder, exist_ok=True)
        for name, data in files.items():
            path = os.path.join(folder, name)
            where = path
            payload = data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else data
            fd, tmp = _temporary(path)
            staged[path] = tmp
            try:
                _write_all(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
        for path, tmp in staged.items():
            where = path
            os.replace(tmp, path)
    except (OSError, UnicodeError) as e:
        for tmp in staged.values():
            if os.path.exists(tmp):
                os.remove(tmp)
        for d in reversed(created):
            try:
                os.rmdir(d)
            except OSError:
                break
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UserError(f"{where}: cannot write the {what} ({reason}); nothing written") from None
    return {name: os.path.join(folder, name) for name in files}


def write_text(path: str, text: str, what: str) -> None:
    """One text file, whole or not at all (see the module)."""
    write_files(os.path.dirname(path) or ".", {os.path.basename(path): text}, what)
