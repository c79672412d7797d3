"""Shared helpers: compose configs the way train.py does, and run the loop in a temp dir."""
from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import collapselab  # noqa: F401  (registers the resolver conf/config.yaml uses)
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def compose_cfg(overrides: list[str]) -> dict:
    """The composed config as a plain dict (what train.py hands to collapselab.loop.run); a fresh copy."""
    return copy.deepcopy(_compose(tuple(overrides)))


# Composing is most of a small run's time (Hydra reads and merges every YAML of the defaults list, ~0.2 s), and the
# suite composes ~200 override lists that share a few dozen choices of groups. So the groups are composed once per
# choice, and each list's value overrides are parsed by Hydra's override parser and applied to a copy with
# OmegaConf.update, as Hydra applies them (groups first, then values). test_compose checks this against a plain compose; anything else
# (+key, ~key, hydra.*, a key that is not there, an interpolation) takes the plain path.
GROUPS = frozenset(p.name for p in CONF.iterdir() if p.is_dir())


@functools.lru_cache(maxsize=None)
def _compose(overrides: tuple[str, ...]) -> dict:
    try:
        return _compose_by_parts(overrides)
    except (LookupError, ConfigAttributeError, ConfigKeyError):  # not a plain value change, or a key that is not
        return plain_compose(overrides)                          # there: Hydra's own compose (and its own error)


def plain_compose(overrides: tuple[str, ...]) -> dict:
    """Hydra's compose, as train.py composes (without the hydra node)."""
    return OmegaConf.to_container(_compose_dictconfig(overrides), resolve=True)


def _compose_by_parts(overrides: tuple[str, ...]) -> dict:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    groups, values = [], []
    for text, o in zip(overrides, OverridesParser.create().parse_overrides(list(overrides))):
        key = o.key_or_group
        if key in GROUPS:
            groups.append(text)
        elif (o.type != OverrideType.CHANGE or o.package is not None or key.split(".")[0] == "hydra" or "$" in text
              or "/" in key):
            raise LookupError(text)
        else:
            values.append(o)
    cfg = copy.deepcopy(_compose_dictconfig(tuple(groups)))
    for o in values:  # what Hydra does with a value override (OmegaConf.update, merge=True, in order)
        OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)  # a key that is not there raises (struct mode)
    return OmegaConf.to_container(cfg, resolve=True)


@functools.lru_cache(maxsize=None)
def _compose_dictconfig(overrides: tuple[str, ...]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_cfg(overrides: list[str], run_dir: Path) -> list[dict]:
    """Compose and run in-process; returns the metrics rows."""
    from collapselab.loop import run

    run(compose_cfg(overrides + ["progress=false"]), run_dir)
    return read_rows(run_dir)


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def strip_wall(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("wall_s", "time")} for r in rows]


def train_cmd(*overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *overrides]


def run_train(*overrides: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run train.py as a user would (in a subprocess, from the repo root)."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(train_cmd(*overrides), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=e)


def filters(policy: str) -> bool:
    """Whether ``policy`` (a conf/policy/ option) draws through the verifier: read from the policy itself."""
    from collapselab.policies import build_policy

    return build_policy(compose_cfg([f"policy={policy}"])).filters


def n_train_after_one(policy: str, synthetic: int, real: int, sized: bool = False) -> int:
    """Generation 1's training set at the policies' defaults; ``sized``: policy.n_synthetic is set (mix at
    real_fraction 0.5 then adds as many real samples; unset, it splits the default size in two). A policy this
    helper does not know (a new conf/policy/ YAML) is held to the size its own memory check plans for."""
    if policy == "mix":
        return 2 * synthetic if sized else synthetic
    if policy in ("replace", "verify", "accumulate_subsample"):
        return synthetic
    if policy in ("accumulate", "verify_accumulate", "fresh"):
        return synthetic + real
    from collapselab.policies import build_policy

    return build_policy(compose_cfg([f"policy={policy}"])).largest_training_set(real, synthetic, 1)


def options(group: str) -> list[str]:
    """Every option of a config group (one YAML file each)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory) -> Path:
    """One data root for the session so the fake evaluator/judge/classifier nets train once."""
    return tmp_path_factory.mktemp("fake_mnist_root")


@pytest.fixture(scope="session")
def real_root(tmp_path_factory) -> Path:
    """The data root of the real-MNIST tests: fetched and its networks trained once a session, in a temp dir
    (never the repository's data/). ``COLLAPSELAB_TEST_DATA`` names a folder to reuse between sessions."""
    keep = os.environ.get("COLLAPSELAB_TEST_DATA")
    return Path(keep) if keep else tmp_path_factory.mktemp("mnist_root")


@pytest.fixture
def tmp_run(tmp_path: Path) -> Path:
    return tmp_path / "run"
