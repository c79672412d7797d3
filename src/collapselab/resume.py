"""Reading back a run directory: which generations are finished, the stored config, what resume continues from."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from .checkpoint import METRICS, SUMMARY, gen_dir, load_torch, move_aside, read_metrics, write_metrics
from .config import diff_configs, flatten
from .errors import RunError
from .interfaces import Policy

log = logging.getLogger("collapselab")

CHECKPOINT = "checkpoint.pt"
SYNTHETIC = "synthetic.pt"


def finished_generations(run_dir: Path, keeps_history: bool = False) -> list[dict]:
    """Rows of generations 0..k that are finished: a metrics row and a readable checkpoint (and, when the
    policy accumulates, a readable synthetic set), contiguous from 0. An unreadable file is moved aside
    (``<name>.unreadable``) with a warning, and its generation counts as unfinished."""
    rows = []
    for i, row in enumerate(read_metrics(run_dir)):
        files = [gen_dir(run_dir, i) / CHECKPOINT] + ([gen_dir(run_dir, i) / SYNTHETIC] if keeps_history and i else [])
        if row.get("generation") != i or not all(p.exists() for p in files) or not all(_readable(p) for p in files):
            break
        rows.append(row)
    return rows


CHECKPOINT_KEYS = ("generation", "config", "generator", "metrics")


def _readable(path: Path) -> bool:
    """Load ``path`` (a checkpoint must also have a checkpoint's structure); if that fails, move it aside and
    warn (generation 0 cannot be redone from anything)."""
    try:
        obj = load_torch(path)
        if path.name == CHECKPOINT:
            missing = [k for k in CHECKPOINT_KEYS if not isinstance(obj, dict) or k not in obj]
            if missing or not isinstance(obj["generator"], dict) or not isinstance(obj["config"], dict):
                raise ValueError(f"not a checkpoint of this project (missing or malformed: {', '.join(missing) or 'generator/config'})")
        return True
    except Exception as e:  # noqa: BLE001 - a truncated zip, a bad pickle, an I/O error: all mean unreadable
        set_aside(path, e)
        return False


def set_aside(path: Path, e: BaseException) -> None:
    """Move an unusable generation file aside (``move_aside``); gen_000's checkpoint is a one-line RunError
    instead (it holds the run's config and first model: nothing can redo it)."""
    if path.parent.name == "gen_000" and path.name == CHECKPOINT:
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}" if str(e) else type(e).__name__
        raise RunError(f"cannot resume: {path} is unreadable ({reason}); generation 0 holds the run's "
                       "config and first model, so start the run again in a new hydra.run.dir") from None
    move_aside(path, e, "its generation and later ones will be redone", what="")


def check_stored_config(run_dir: Path, cfg: dict, n_done: int) -> None:
    stored = load_torch(gen_dir(run_dir, 0) / CHECKPOINT)["config"]
    diff = diff_configs(stored, cfg)
    if diff:
        a, b = flatten(stored), flatten(cfg)
        detail = "; ".join(f"{k}: stored {a.get(k, '<missing>')!r}, now {b.get(k, '<missing>')!r}" for k in diff)
        raise RunError(
            f"{run_dir} holds a run with a different config ({len(diff)} key(s) differ: {detail}). "
            "Resume it with the stored values, or start a new run with a different hydra.run.dir."
        )
    if not cfg.get("resume", True):
        raise RunError(
            f"{run_dir} already holds {n_done} finished generation(s) and resume=false refuses to overwrite them. "
            "Use resume=true to continue it, or a new hydra.run.dir to start over."
        )


def resume(run_dir: Path, cfg: dict, study, policy: Policy) -> tuple[list[dict], object, list]:
    """(finished rows, the last finished generator, earlier synthetic sets) of a run dir; empty for a new run."""
    rows = finished_generations(run_dir, policy.keeps_history)
    if not rows:
        write_metrics(run_dir, [])
        return rows, None, []
    check_stored_config(run_dir, cfg, len(rows))
    prev_model = None
    while prev_model is None:  # a checkpoint whose model does not fit this study counts as unreadable
        last = len(rows) - 1
        path = gen_dir(run_dir, last) / CHECKPOINT
        ckpt = load_torch(path)
        try:
            model = study.new_generator(last)
            model.load_state_dict(ckpt["generator"])
            study.load_verifier_state(ckpt.get("verifier"))
            prev_model = model
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            set_aside(path, e)  # gen_000: a one-line RunError
            rows = rows[:-1]
    write_metrics(run_dir, rows)  # drop a torn or unfinished tail
    history = []
    if policy.keeps_history:
        for t in range(1, last + 1):
            path = gen_dir(run_dir, t) / SYNTHETIC
            if not path.exists():
                raise RunError(f"cannot resume: {path} is missing and policy={policy.name} needs every earlier "
                               "synthetic set; start a new run (new hydra.run.dir)")
            history.append(study.unpack_synthetic(load_torch(path)))
    log.info("resuming %s after generation %d", run_dir, last)
    return rows, prev_model, history


RUN_FILES = (".lock", ".hydra", METRICS, SUMMARY, "tb", "error.txt", "train.log")


def claim(run_dir: Path, cfg: dict, refuse_foreign: bool = False) -> None:
    """Refuse ``run_dir`` when it holds finished generations of another config (or ``resume=false`` would
    overwrite them), or, with ``refuse_foreign``, files that are not a run's: RunError, nothing changed."""
    done = finished_generations(run_dir)
    if done:
        check_stored_config(run_dir, cfg, len(done))
        return
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_FILES
                     and not re.fullmatch(r"gen_\d{3,}", p.name) and not p.name.endswith(".tmp"))
    if refuse_foreign and foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        raise RunError(f"{run_dir} holds files that are not a collapselab run's ({shown}): give the run a new or "
                       "empty hydra.run.dir, or pass adopt_dir=true to run there anyway (a run's own names, "
                       "metrics.jsonl, summary.json, gen_NNN/, tb/, would be overwritten)")
