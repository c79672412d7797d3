"""Run-directory layout, atomic writes, and reading back what a run has finished."""
from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .errors import RunError

log = logging.getLogger("collapselab")

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


def gen_dir(run_dir: Path, generation: int) -> Path:
    """<run>/gen_NNN."""
    return Path(run_dir) / f"gen_{generation:03d}"


def write_failed(path: Path, e: OSError) -> RunError:
    """A failed write (full disk, read-only or unwritable folder) as one line naming the path."""
    why = e.strerror or str(e) or type(e).__name__
    return RunError(f"could not write {path}: {why}. Earlier generations are intact: free space or fix the "
                    "folder's permissions, then run the same command to resume")


def check_writable(folder: Path, what: str) -> None:
    """RunError naming ``folder`` unless this process can create files in it (or create it): checked before
    the work whose result would be written there, so nothing is computed in vain."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise RunError(f"cannot write {what} under {folder}: {probe} is a file, not a folder; point data.root "
                       "(or COLLAPSELAB_DATA) at a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunError(f"cannot write {what} under {folder}: {probe} is not writable by this user; use a "
                       "data.root you can write to (or COLLAPSELAB_DATA), or have its owner fill it once")


@contextmanager
def cache_lock(path: Path):
    """An OS lock on ``<path>.lock``: parallel jobs on one data root build a cache file once, the others wait.
    On a root this user cannot write, a file already there is read without the lock; a missing one is a
    one-line RunError naming the folder, before anything is computed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path.with_name(path.name + ".lock"), "a")
    except OSError:
        if path.is_file():
            yield  # a read-only shared cache: nothing will be written here
            return
        check_writable(path.parent, path.name)
        raise
    with f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def move_aside(path: Path, e: BaseException, then: str, what: str = "cached ") -> None:
    """Move an unusable file to ``<name>.unreadable`` (never deleted: it may be a labmate's) with one warning
    naming it, why (the error's first sentence) and ``then`` (what happens next)."""
    aside = path.with_name(path.name + ".unreadable")
    why = (str(e).splitlines()[0] if str(e) else type(e).__name__).split(". ")[0][:160]
    try:
        os.replace(path, aside)
    except OSError as err:
        raise RunError(f"{what}{path} is unreadable ({why}) and cannot be moved aside ({err.strerror}): "
                       "delete it or use a folder you can write to") from None
    log.warning("%s%s is unreadable (%s): moved to %s; %s", what, path, why, aside.name, then)


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a file shared with labmates follows the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_failed(path, e) from None
        raise


def fitting_state(state: Any, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state``'s tensors when it has exactly ``like``'s keys and shapes (a model's state from a checkpoint);
    ValueError naming the first mismatch otherwise, so a wrong file is caught on load, not later."""
    if not isinstance(state, dict):
        raise ValueError(f"a model state must be a dict of tensors, got {type(state).__name__}")
    for k, ref in like.items():
        v = state.get(k)
        if not torch.is_tensor(v) or v.shape != ref.shape:
            got = tuple(v.shape) if torch.is_tensor(v) else type(v).__name__
            raise ValueError(f"model state {k!r}: expected a tensor of shape {tuple(ref.shape)}, got {got}")
    return state


def save_torch(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same folder, then rename: never a half-written file."""
    buf = io.BytesIO()  # serialised first, so a full disk shows up as the OSError of a plain write
    torch.save(obj, buf)
    _atomic_write(Path(path), lambda f: f.write(buf.getbuffer()))


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file's bytes (``algorithm``: a hashlib name, e.g. md5, sha256), read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_torch(path: Path) -> Any:
    """torch.load with weights_only=True (checkpoints hold plain containers and tensors)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def write_json(obj: Any, path: Path) -> None:
    """Atomic JSON write (NaN/inf become null)."""
    text = json.dumps(clean_json(obj), indent=2, sort_keys=False) + "\n"
    _atomic_write(Path(path), lambda f: f.write(text.encode()))


def clean_json(obj: Any) -> Any:
    """Replace NaN/inf floats by None, recursively, so the output is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    return obj


def read_metrics(run_dir: Path) -> list[dict]:
    """Rows of metrics.jsonl in order; a torn last line (killed mid-write) is ignored."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    """Rewrite metrics.jsonl atomically (used to drop rows past the resume point)."""
    text = "".join(json.dumps(clean_json(r)) + "\n" for r in rows)
    _atomic_write(Path(run_dir) / METRICS, lambda f: f.write(text.encode()))


def append_metrics(run_dir: Path, row: dict) -> None:
    """Append one row and fsync: once this returns the generation counts as finished."""
    path = Path(run_dir) / METRICS
    line = json.dumps(clean_json(row)) + "\n"
    try:
        with open(path, "a") as f:
            start = f.tell()
            try:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                f.truncate(start)  # no torn row left behind (a reader would drop it anyway)
                raise
    except OSError as e:
        raise write_failed(path, e) from None
