"""Validation of the composed config: every bad value becomes a ConfigError that says how to fix it."""
from __future__ import annotations

from typing import Any

from .errors import ConfigError

# The one list of keys that never change a run's numbers: resume accepts new values for them, sweep job
# folders are named without them (conf/config.yaml reads this list through a resolver), and summaries
# do not treat them as part of a setting. `generations` only says how far to go; `keep_synthetic`
# stores what `regenerate_synthetic` can redraw exactly; `data.source` picks where the same MNIST files
# come from (`fake` is for tests and is told apart by the data's own key).
NON_RESULT_KEYS = ("generations", "resume", "device", "progress", "samples_every", "keep_synthetic",
                   "data.root", "data.source")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def require_int(cfg: dict, key: str, lo: int | None = None, hint: str = "") -> int:
    """cfg[key] (dotted) must be an integer >= lo."""
    v = get(cfg, key)
    if not _is_int(v) or (lo is not None and v < lo):
        bound = f" >= {lo}" if lo is not None else ""
        raise ConfigError(f"{key}={v!r} is invalid: it must be an integer{bound}. {hint}".strip())
    return v


def require_number(cfg: dict, key: str, lo: float | None = None, hi: float | None = None,
                   lo_open: bool = False, hint: str = "") -> float:
    """cfg[key] must be a real number in [lo, hi] (or (lo, hi] when lo_open)."""
    v = get(cfg, key)
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


def require_choice(cfg: dict, key: str, choices: tuple[str, ...]) -> str:
    v = get(cfg, key)
    if v not in choices:
        raise ConfigError(f"{key}={v!r} is invalid: choose one of {', '.join(choices)}")
    return v


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
    require_int(cfg, "generations", 0, "Set generations to the number of retraining rounds after generation 0.")
    require_int(cfg, "seed", 0)
    require_int(cfg, "replicates", 1)
    require_int(cfg, "samples_every", 0)
    pol = cfg.get("policy", {})
    if pol.get("n_synthetic") is not None:
        require_int(cfg, "policy.n_synthetic", 1)
    require_int(cfg, "policy.growth", 0)
    require_number(cfg, "policy.max_candidates_factor", 1.0)


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


def diff_configs(stored: dict, current: dict, ignore: tuple[str, ...] = NON_RESULT_KEYS) -> list[str]:
    """Dotted keys whose values differ between two configs (ignoring resume-safe keys)."""
    a, b = flatten(stored), flatten(current)
    keys = sorted(set(a) | set(b))
    return [k for k in keys if k not in ignore and a.get(k, "<missing>") != b.get(k, "<missing>")]
