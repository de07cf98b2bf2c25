"""Claim files: at most one worker does a piece of work, across processes and machines that share a directory.

A claim is ``DIR/<key>.claim``, created atomically: its content is written to a temporary file
which is then hard-linked to the claim's name, and ``link`` fails when the name exists (atomic on
local filesystems and on NFS, where ``O_EXCL`` was long unreliable).  The claim holds its owner:
machine (host name and boot id), process id and start time, rank, and a random token.

A claim is *stale*, and may be taken over, when its owner is gone:

* on the same machine (same host and boot id): the process no longer runs (or its pid now belongs
  to a process that started at another time) -- detected at once, so a killed rank's work is
  retried by the next rerun;
* on another machine: its heartbeat stopped, i.e. the file's modification time, which the owner
  touches every ``heartbeat_s`` seconds, is older than ``stale_s`` (default 10 minutes;
  ``SPARSENET_CLAIM_STALE_S`` overrides it).

Taking over is serialised by a second, short-lived claim (``<key>.claim.break``): the breaker
re-reads the stale claim and removes it only if it still holds the same owner, so two workers
that find the same stale claim never remove a fresh one.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_create_json

__all__ = ["Claims", "machine_id", "STALE_S", "HEARTBEAT_S"]

STALE_S = 600.0       # a claim of another machine whose heartbeat is older than this is taken over
HEARTBEAT_S = 30.0    # how often a holder touches its claims
_BREAK_STALE_S = 60.0  # a takeover lock this old was left by a breaker that died mid-takeover


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def machine_id() -> str:
    """This machine as claims name it: the host name and, where Linux gives one, the boot id."""
    boot = _boot_id()
    return f"{socket.gethostname()}:{boot}" if boot else socket.gethostname()


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]   # field 22; the name in (...) may hold spaces


def _running(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return start is None or _start_time(pid) in (None, start)


def _stale_default() -> float:
    text = os.environ.get("SPARSENET_CLAIM_STALE_S")
    if text is None:
        return STALE_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SparsenetError(f"SPARSENET_CLAIM_STALE_S={text!r}: expected a number of seconds > 0")
    return value


class Claims:
    """The claims of one worker in ``directory``: take, check, release; a heartbeat keeps them fresh."""

    def __init__(self, directory: str | os.PathLike, owner: dict[str, Any] | None = None, *,
                 stale_s: float | None = None, heartbeat_s: float = HEARTBEAT_S):
        self.directory = Path(directory)
        self.stale_s = _stale_default() if stale_s is None else float(stale_s)
        self.heartbeat_s = float(heartbeat_s)
        self.owner = {"machine": machine_id(), "pid": os.getpid(), "start": _start_time(os.getpid()),
                      "token": uuid.uuid4().hex, **(owner or {})}
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ paths and owners
    def path(self, key: str) -> Path:
        return self.directory / f"{key}.claim"

    def _read(self, path: Path) -> tuple[str, dict[str, Any] | None] | None:
        """(text, owner) of a claim file; None when there is none; owner None when unreadable."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError:
            return "", None
        try:
            owner = json.loads(text)
        except ValueError:
            owner = None
        return text, owner if isinstance(owner, dict) else None

    def _stale(self, path: Path, owner: dict[str, Any] | None) -> bool:
        if owner is not None and owner.get("machine") == self.owner["machine"] and isinstance(owner.get("pid"), int):
            return not _running(owner["pid"], owner.get("start"))
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return False
        return age > self.stale_s

    def holder(self, key: str) -> dict[str, Any] | None:
        """The live owner of ``key``'s claim (None: unclaimed, or claimed by a worker that is gone)."""
        path = self.path(key)
        got = self._read(path)
        if got is None or self._stale(path, got[1]):
            return None
        return got[1] or {}

    def mine(self, key: str) -> bool:
        got = self._read(self.path(key))
        return got is not None and got[1] is not None and got[1].get("token") == self.owner["token"]

    # ------------------------------------------------------------------ taking and releasing
    def try_claim(self, key: str) -> bool:
        """Take ``key`` if nobody live holds it (a stale claim is taken over); True if now ours."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        for _ in range(3):
            if self._link(path):
                with self._lock:
                    self._held.add(key)
                self._start_heartbeat()
                return True
            got = self._read(path)
            if got is None:
                continue           # released between our attempt and the read: try again
            if got[1] is not None and got[1].get("token") == self.owner["token"]:
                return True
            if not self._stale(path, got[1]) or not self._break(path, got[0]):
                return False
        return False

    def _link(self, path: Path) -> bool:
        return atomic_create_json(path, {**self.owner, "claimed_at": time.time()})

    def _break(self, path: Path, seen: str) -> bool:
        """Remove the stale claim at ``path`` if it still reads ``seen``; True if removed."""
        lock = path.with_name(path.name + ".break")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > _BREAK_STALE_S:
                    lock.unlink()
            except FileNotFoundError:
                pass
            return False
        try:
            got = self._read(path)
            if got is None:
                return True
            if got[0] != seen:
                return False
            path.unlink()
            return True
        finally:
            os.close(fd)
            lock.unlink()

    def release(self, key: str) -> None:
        """Give ``key`` back (only if the claim is still ours)."""
        with self._lock:
            self._held.discard(key)
        if self.mine(key):
            try:
                self.path(key).unlink()
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Release every claim and stop the heartbeat."""
        self._stop.set()
        for key in list(self._held):
            self.release(key)

    def __enter__(self) -> "Claims":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ heartbeat
    def _start_heartbeat(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="sparsenet-claims", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                held = list(self._held)
            for key in held:
                try:
                    os.utime(self.path(key))
                except OSError:
                    pass
