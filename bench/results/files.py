"""Files written whole or not at all: what a failed write (a full disk, a read-only folder) leaves is what was there.

Every output s2sbench writes beside the store -- a baseline, ``compare --markdown``, a report's pages and
figures -- goes through here. Each file is first written in full to a temporary name in its own folder
(where a full disk shows up), and only when every file of the set is written are they renamed into place
(a rename needs no free space). On failure the temporary files are removed, and so is a folder this call
created, and the error is one ``UserError`` line naming the path.
"""

from __future__ import annotations

import os
import tempfile

from bench.errors import UserError


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
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(name) + ".", suffix=".tmp", dir=os.path.dirname(path))
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
