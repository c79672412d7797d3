"""Validation of the composed config: every bad value becomes a ConfigError that says how to fix it."""
from __future__ import annotations

import os
from typing import Any

from .errors import ConfigError

# The one list of keys that never change a run's numbers: resume accepts new values for them, sweep job
# folders are named without them (conf/config.yaml reads this list through a resolver), and summaries
# do not treat them as part of a setting. `generations` only says how far to go; `keep_synthetic`
# stores what `regenerate_synthetic` can redraw exactly; `data.source` picks where the same MNIST files
# come from (`fake` is for tests and is told apart by the data's own key).
NON_RESULT_KEYS = ("generations", "resume", "device", "progress", "samples_every", "keep_synthetic",
                   "data.root", "data.source", "adopt_dir", "threads", "allow_device_change")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# Counts above this are refused up front (no study here needs them; they would exhaust memory mid-run).
MAX_COUNT = 10**8
# Float64 elements one tensor of the data may hold (4 GB).
MAX_ELEMENTS = 5 * 10**8


def check_int(key: str, v: Any, lo: int | None = None, hint: str = "", hi: int | None = MAX_COUNT) -> int:
    """``v`` (the value of ``key``) must be an integer in [lo, hi]."""
    if not _is_int(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        bound = (f" >= {lo}" if lo is not None else "") + (f" and <= {hi:,}" if hi is not None else "")
        raise ConfigError(f"{key}={v!r} is invalid: it must be an integer{bound}. {hint}".strip())
    return v


def check_bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{key}={v!r} is invalid: choose true or false")
    return v


def check_label(key: str, v: Any) -> str:
    """A component's ``name``: a non-empty string (it labels logs, errors and sweeps)."""
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{key}={v!r} is invalid: it must be a non-empty name (a string)")
    return v


def check_number(key: str, v: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 hint: str = "") -> float:
    """``v`` must be a real number in [lo, hi] (or (lo, hi] when lo_open)."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v <= hi
    if not ok:
        left = "(" if lo_open else "["
        rng = f" in {left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        raise ConfigError(f"{key}={v!r} is invalid: it must be a number{rng}. {hint}".strip())
    return float(v)


def check_choice(key: str, v: Any, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise ConfigError(f"{key}={v!r} is invalid: choose one of {', '.join(choices)}")
    return v


def check_elements(n: int, what: str, hint: str) -> None:
    """Refuse a tensor of more than MAX_ELEMENTS float64 values before it is allocated."""
    if n > MAX_ELEMENTS:
        raise ConfigError(f"{what} would hold {n:,} values ({n * 8 / 2**30:.0f} GiB), above the "
                          f"{MAX_ELEMENTS:,} this machine is asked to allocate. {hint}".strip())


def memory_budget() -> int:
    """Bytes one run may ask for in a single structure: half this machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # no sysconf: no bound
        return 2**62


def check_memory(n_bytes: int, what: str, hint: str) -> None:
    """Refuse ``what`` (n_bytes) over the memory budget before it is allocated, naming both sizes and ``hint``."""
    budget = memory_budget()
    if n_bytes > budget:
        raise ConfigError(f"{what} would take {n_bytes / 2**30:,.1f} GiB, above {budget / 2**30:,.1f} GiB (half this "
                          f"machine's memory). {hint}".strip())


# cfg-reading forms of the checks above: the value of dotted ``key`` in ``cfg``
def require_int(cfg: dict, key: str, lo: int | None = None, hint: str = "", hi: int | None = MAX_COUNT) -> int:
    return check_int(key, get(cfg, key), lo, hint, hi)


def require_bool(cfg: dict, key: str) -> bool:
    return check_bool(key, get(cfg, key))


def require_label(cfg: dict, key: str) -> str:
    return check_label(key, get(cfg, key))


def require_number(cfg: dict, key: str, lo: float | None = None, hi: float | None = None,
                   lo_open: bool = False, hint: str = "") -> float:
    return check_number(key, get(cfg, key), lo, hi, lo_open, hint)


def require_choice(cfg: dict, key: str, choices: tuple[str, ...]) -> str:
    return check_choice(key, get(cfg, key), choices)


def get(cfg: dict, key: str, default: Any = None) -> Any:
    """cfg['a']['b'] for key 'a.b' (default when missing)."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def validate_common(cfg: dict) -> None:
    """Top-level keys shared by every generator."""
    require_int(cfg, "generations", 0, "Set generations to the number of retraining rounds after generation 0.",
                hi=100_000)
    require_int(cfg, "seed", 0, hi=2**63 - 1)
    require_int(cfg, "replicates", 1)
    require_int(cfg, "samples_every", 0)
    for key in ("resume", "progress"):
        require_bool(cfg, key)
    keep = get(cfg, "keep_synthetic")
    if keep != "auto" and not isinstance(keep, bool):
        raise ConfigError(f"keep_synthetic={keep!r} is invalid: use auto (stored only where the policy accumulates "
                          "and reads them back), true (every generation's synthetic set) or false")
    if "adopt_dir" in cfg:  # train.py's key (a config built by hand may leave it out)
        require_bool(cfg, "adopt_dir")
    if "allow_device_change" in cfg:
        require_bool(cfg, "allow_device_change")
    for group in ("generator", "verifier", "policy"):
        require_label(cfg, f"{group}.name")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


# Keys added to a part after runs were made, with the value that reproduces those runs: a stored config without the
# key matches a current one holding that value. A key missing on one side matches null on the other (null is "the
# code's default"), and retired keys, which never changed a number, are ignored.
ADDED_DEFAULTS = {"verifier.selection": "top", "verifier.temperature": 1.0, "generator.early_stopping": "heldout",
                  "verifier.batch_size": 256, "verifier.holdout": 0.1, "verifier.fake_labels": "real",
                  "data.real_pixels": "binary"}
RETIRED_KEYS = ("data.truth",)


def diff_configs(stored: dict, current: dict, ignore: tuple[str, ...] = NON_RESULT_KEYS) -> list[str]:
    """Dotted keys whose values differ between two configs (ignoring resume-safe keys)."""
    a, b = flatten(stored), flatten(current)
    keys = sorted(set(a) | set(b))

    def value(side: dict, k: str):
        return side[k] if k in side else ADDED_DEFAULTS.get(k)

    return [k for k in keys if k not in ignore and k not in RETIRED_KEYS and value(a, k) != value(b, k)]


def check_training_sets(policy, generations: int, n_real: int, per_sample: int, default_synthetic: int,
                        replicates: int = 1, unit: int = 1) -> None:
    """The largest training set ``policy`` builds over ``generations`` must fit: replicates x samples x
    per_sample values, checked before any data is made. ``unit`` samples make one synthetic count (linear: a
    count per direction)."""
    n = policy.largest_training_set(n_real, default_synthetic, generations, unit)
    check_elements(replicates * n * per_sample, "the largest training set",
                   "Use fewer replicates, a smaller data.n_real or policy.n_synthetic, or fewer generations.")
