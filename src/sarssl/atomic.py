"""Atomic file output: write to a temporary sibling, then rename over the target."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success rename it to `target`.

    A process killed inside the block leaves only a hidden ``.tmp`` sibling, never a partial
    `target`. The rename is atomic on POSIX file systems (same directory, same device).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}."
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    # tempfile makes them private (0600, 0700); the target gets what a plain open or mkdir
    # would give it, so that a group sharing the results can read them.
    tmp.chmod((0o777 if is_dir else 0o666) & ~current_umask())
    try:
        yield tmp
        if is_dir and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
