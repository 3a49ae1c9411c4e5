"""Folders built atomically and stamped with a completion record: what `data_cache/` holds.

`build_atomically(root, wanted, build)` returns `root` holding the build whose record (a JSON file
written last, e.g. the synthetic benchmark's `benchmark.json`) equals `wanted`:

- a matching record: reused as it is;
- otherwise `build(folder)` writes into a temporary sibling `.<name>.tmp-*`, which is renamed onto
  `root` once complete: a killed build never leaves a folder that looks complete, and an earlier
  complete one survives it untouched;
- a `root` holding files but no record (not a finished xrg build) is refused with one line.

Builders lock the parent folder (flock on the directory: no lock file), so runs started together
build once; a temporary sibling found while holding the lock was left by a killed builder and is
removed (also on a cache hit, when no one else is building).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from xrg.data.errors import DataError


def read_record(root: Path, record: str) -> dict | None:
    try:
        return json.loads((Path(root) / record).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def build_atomically(root, wanted: dict | None, build: Callable[[Path], object], record: str,
                     rebuild: bool = False, what: str = "build") -> Path:
    """See the module docstring; `rebuild` builds even over a matching record."""
    root = Path(root)
    if not rebuild and read_record(root, record) == wanted:
        with _builders_lock(root.parent, wait=False) as held:
            if held:
                _remove_stale(root)
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with _builders_lock(root.parent, wait=True) as held:
        if held:
            _remove_stale(root)
        if not rebuild and read_record(root, record) == wanted:  # another run built it while we waited
            return root
        if root.exists() and any(root.iterdir()) and read_record(root, record) is None:
            raise DataError(f"{root}: exists and is not a {what} (no {record}, so not a finished xrg build); "
                            "refusing to overwrite it: delete it or choose another folder")
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
        try:
            build(tmp)
            old = root.with_name(f".{root.name}.old-{uuid.uuid4().hex[:8]}")
            if root.exists():
                root.rename(old)
            tmp.rename(root)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return root


def _remove_stale(root: Path) -> None:
    for stale in [*root.parent.glob(f".{root.name}.tmp-*"), *root.parent.glob(f".{root.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def _builders_lock(folder: Path, wait: bool) -> Iterator[bool]:
    """Yields whether this process holds the exclusive builders' lock on `folder`: False without
    `wait` while another builder holds it, and where the platform has no `flock`."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    if not folder.is_dir():
        yield False
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)  # closing releases the lock
