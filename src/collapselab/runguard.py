"""Run-directory integrity: one writer per run directory, and a clean stop on SIGTERM / SIGINT.

The lock is an OS lock (``fcntl.flock``) on ``<run>/.lock``: the kernel releases it when its process
dies, however it dies, so there is never a stale lock to clean up. The file itself says who holds it.

A stop signal (a cluster's preemption sends SIGTERM, then SIGKILL after a grace period) raises
``RunInterrupted`` at once, except inside ``critical()`` sections (the writes that finish a
generation), where it is held until the section ends: a generation is either finished or not started.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import signal
import socket
import threading
from pathlib import Path

from .errors import ConfigError, RunError

LOCK = ".lock"


class RunDirBusy(RunError):
    """Another live process holds the run directory."""


class RunInterrupted(BaseException):
    """A stop signal arrived; everything finished so far is on disk and resumable."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


# file systems that hold no files of their own: a run dir there fails on its first write, or writes into the kernel
PSEUDO_FS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "pstore",
             "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "binfmt_misc", "efivarfs", "autofs", "rpc_pipefs",
             "nsfs", "selinuxfs"}


def _mount_type(path: Path) -> str | None:
    """The file-system type of the mount that holds ``path`` (Linux: /proc/self/mounts), or None where unknown."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def check_run_dir(run_dir: str | Path, key: str = "hydra.run.dir") -> Path:
    """Refuse, before anything is written, a run dir that is a file, sits under a file, on a pseudo file system
    (/proc, /sys, /dev) or in a folder this user cannot write; returns the absolute path."""
    path = Path(os.path.abspath(run_dir))
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={run_dir} is a file, not a folder: choose a folder (a new one is created)")
    kind = _mount_type(path)
    if kind in PSEUDO_FS:
        raise ConfigError(f"{key}={run_dir} is on a {kind} pseudo file system, which holds no run files: choose a "
                          "folder on a disk (e.g. under outputs/ or your home)")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{key}={run_dir} lies under {parent}, a file: choose a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={run_dir}: {parent} is not writable by this user; choose a folder you can write")
    return path


@contextlib.contextmanager
def run_lock(run_dir: Path, announce: bool = True):
    """Hold ``<run_dir>/.lock`` for the block; a second holder gets RunDirBusy naming the first.

    Yields a function that writes this process into the lock file (who a refused process names); with
    ``announce=False`` the caller calls it once the directory is its own, so a refused claim leaves it as it was.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:  # a folder named .lock, an unwritable run dir
        raise RunError(f"cannot open the run dir's lock file {path}: {e.strerror}; a run dir's .lock must be a "
                       "file this user can write: remove what is there, or choose another hydra.run.dir") from None

    def say_who() -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)

    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            raise RunDirBusy(f"{run_dir} is in use by another run ({holder}); wait for it to end or stop it, "
                             "or give this run another hydra.run.dir") from None
        if announce:
            say_who()
        yield say_who
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _describe(blob: bytes) -> str:
    try:
        h = json.loads(blob.decode())
        return f"pid {h['pid']} on {h['host']}, started {h['started']}"
    except (ValueError, KeyError, UnicodeDecodeError):
        return "a process that has not yet said who it is"


class _Guard:
    depth = 0
    pending: int | None = None
    stopping: int | None = None  # the signal that is stopping the run: later ones change neither message nor status


def _stop(signum: int) -> RunInterrupted:
    _Guard.stopping = signum
    return RunInterrupted(signum)


def _on_signal(signum, frame) -> None:
    if _Guard.stopping is not None:
        return  # a stop is already under way (e.g. SIGTERM after Ctrl-C): the first signal says how it ended
    if _Guard.depth > 0:
        _Guard.pending = _Guard.pending or signum  # raised when the critical section ends
        return
    raise _stop(signum)


@contextlib.contextmanager
def stop_signals():
    """SIGTERM and SIGINT raise RunInterrupted inside the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    _Guard.pending = _Guard.stopping = None
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def critical():
    """Hold stop signals until the block ends (the writes that finish one generation)."""
    _Guard.depth += 1
    try:
        yield
    finally:
        _Guard.depth -= 1
        if _Guard.depth == 0 and _Guard.pending is not None:
            signum, _Guard.pending = _Guard.pending, None
            raise _stop(signum)
