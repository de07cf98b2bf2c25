"""Atomic writes: a temporary file in the same directory, then ``os.replace``.

An interrupted run never leaves a half-written result that looks whole.  ``jsonable`` turns
results into plain JSON values first.  Staging files and folders carry the writer's process id
(``.NAME.PID.XXXX.tmp``, ``.NAME.PID.XXXX.staging``), so a later run removes those whose writer
is gone (``clean_stale``).  ``check_out_dir`` and ``check_out_file`` refuse an output path that
cannot be a directory (or a file) before any work starts; ``read_json`` reads a user's JSON file
and turns every way it can fail into one ``SparsenetError``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from sparsenet.errors import SparsenetError


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy/torch scalars and arrays to Python, keys to str, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _blocking_file(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists and is not a directory, if any."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return None if p.is_dir() else p
    return None


def check_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse an output directory that is a file or lies under one, before any work starts."""
    path = Path(path)
    blocker = _blocking_file(path)
    if blocker == path:
        raise SparsenetError(f"{option} {path} is a file; expected a directory (an existing one, or one to create)")
    if blocker is not None:
        raise SparsenetError(f"{option} {path} cannot be created: {blocker} is a file, not a directory")
    return path


def check_out_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """Refuse an output file that is a directory or lies under a file, before any work starts."""
    path = Path(path)
    if path.is_dir():
        raise SparsenetError(f"{option} {path} is a directory; expected the path of a file to write")
    blocker = _blocking_file(path.parent)
    if blocker is not None:
        raise SparsenetError(f"{option} {path} cannot be written: {blocker} is a file, not a directory")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or not a pid we can ask about): leave its files alone
    return True


def staging_prefix(name: str) -> str:
    """The prefix of this process's staging files and folders for a result called ``name``."""
    return f".{name}.{os.getpid()}."


def clean_stale(directory: str | os.PathLike, name: str) -> list[Path]:
    """Remove staging files (``.NAME.PID.*.tmp``) and folders (``.NAME.PID.*.staging``) that an
    interrupted writer of ``NAME`` left in ``directory``; those of live processes stay."""
    directory = Path(directory)
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[^/]*\.(tmp|staging)$")
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or int(m[1]) == os.getpid() or _alive(int(m[1])):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


class _quiet:
    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return kind is not None and issubclass(kind, OSError)


def _remove(entry: Path) -> None:
    """A file, link or folder gone, whatever it is (a race with another remover is fine)."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with _quiet():
            entry.unlink()


def entries(directory: str | os.PathLike) -> set[Path] | None:
    """What ``directory`` holds now (None: it does not exist), for ``roll_back``."""
    directory = Path(directory)
    return set(directory.iterdir()) if directory.is_dir() else None


def roll_back(directory: str | os.PathLike, before: set[Path] | None) -> None:
    """Remove what was added to ``directory`` since ``entries`` saw ``before`` (all of it, when it
    did not exist then): a refused command leaves its output directory as it was."""
    directory = Path(directory)
    if before is None:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for entry in entries(directory) or set():
        if entry not in before:
            _remove(entry)


def why_no_file(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be read as a file, for an error message: a directory is named as one."""
    return "is a directory, not a file" if Path(path).is_dir() else "not found"


def make_parent(path: Path) -> None:
    """``mkdir -p`` of ``path``'s folder, with a message (not an OSError) when a file is in the way."""
    blocker = _blocking_file(path.parent)
    if blocker is not None:
        raise SparsenetError(f"cannot write {path}: {blocker} is a file, not a directory")
    path.parent.mkdir(parents=True, exist_ok=True)


def atomic_write_with(path: str | os.PathLike, write: Callable[[Any], None], mode: str) -> Path:
    """Call ``write(f)`` on a temporary file opened with ``mode``, then move it onto ``path``."""
    path = Path(path)
    make_parent(path)
    if path.is_dir():
        raise SparsenetError(f"cannot write {path}: it is a directory")
    clean_stale(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=staging_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_create_text(path: str | os.PathLike, text: str) -> bool:
    """Write ``text`` to ``path`` only if nothing is there (whole, via a hard link, which fails when
    the name exists even across machines on NFS); True if this call created it."""
    path = Path(path)
    make_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=staging_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def atomic_create_json(path: str | os.PathLike, obj: Any) -> bool:
    return atomic_create_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, what: str) -> Any:
    """A user's JSON file, parsed; every failure (not text, not JSON, nested too deep) is one
    ``SparsenetError`` saying ``path is not {what}``."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise SparsenetError(f"{path} is not {what}: not a UTF-8 text file") from None
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or an integer of more digits than Python converts
        raise SparsenetError(f"{path} is not {what}: not JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise SparsenetError(f"{path} is not {what}: its JSON is nested too deeply to read") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_with(path, lambda f: f.write(text), "w")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write_with(path, lambda f: f.write(data), "wb")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    return atomic_write_with(path, lambda f: torch.save(obj, f), "wb")


def atomic_savefig(fig, path: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically (format taken from the final suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write_with(path, lambda f: fig.savefig(f, format=fmt, **kwargs), "wb")


def unreadable_torch_file(path: Path) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in our words: torch's own text advises
    turning off the safety check that keeps a foreign file's code from running, which sparsenet
    never does, so it is never quoted."""
    import zipfile

    if path.stat().st_size == 0:
        return "it is empty"
    if not zipfile.is_zipfile(path):
        return "it is not a file written by torch.save (no zip archive inside)"
    return ("it was written by torch.save but holds Python objects other than tensors and plain values "
            "(sparsenet never unpickles those), or it is truncated")
