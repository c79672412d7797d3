"""Run-directory layout, atomic writes, and reading back what a run has finished."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


def gen_dir(run_dir: Path, generation: int) -> Path:
    """<run>/gen_NNN."""
    return Path(run_dir) / f"gen_{generation:03d}"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_torch(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same folder, then rename: never a half-written file."""
    _atomic_write(Path(path), lambda f: torch.save(obj, f))


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
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(clean_json(row)) + "\n")
        f.flush()
        os.fsync(f.fileno())
