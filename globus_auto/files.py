"""Private files: the 0700 state folder and atomic 0600 writes.

Everything in the state folder (datastore, tokens, locks, logs) is private to
its user. Imports only the standard library.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) and make it 0700: it holds tokens."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def not_owned(folder: Path) -> tuple[Path, int] | None:
    """The first of ``folder`` and what is in it (two levels down) that this
    process's user does not own, with its owner's uid; None when all is ours.

    Why: a run with ``sudo`` leaves files owned by root in a user's state
    folder (or the folder is a shared service account's); the next run as the
    user could neither read its tokens nor write its log. Root may use any
    folder, so nothing is reported for it. A missing folder is none of this.
    """
    me = os.geteuid()
    if me == 0:
        return None
    for path in _folder_and_entries(folder, depth=2):
        try:
            owner = path.lstat().st_uid
        except OSError:
            continue
        if owner != me:
            return path, owner
    return None


def _folder_and_entries(folder: Path, depth: int) -> Iterator[Path]:
    yield folder
    if depth == 0:
        return
    try:
        with os.scandir(folder) as entries:
            found = sorted(entries, key=lambda e: e.name)
    except OSError:  # unreadable: the folder itself is then not ours, or absent
        return
    for entry in found:
        if entry.is_dir(follow_symlinks=False):
            yield from _folder_and_entries(Path(entry.path), depth - 1)
        else:
            yield Path(entry.path)


def owner_name(uid: int) -> str:
    """The user name of ``uid``, else the number itself."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def write_private_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically, mode 0600.

    Why atomic: a rotated refresh token is the only copy of a working login; a
    crash mid-write must leave the old file or the new one, never half of each.
    """
    ensure_private_dir(path.parent)
    text = json.dumps(data, indent=1, sort_keys=True)
    replace_file(path, text.encode("utf-8"), 0o600)


def replace_file(path: Path, content: bytes, mode: int) -> None:
    """Replace ``path`` with ``content`` atomically, with ``mode`` whatever the
    umask; the temporary file (``.NAME.xxxx`` beside it) never outlives a failure.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
