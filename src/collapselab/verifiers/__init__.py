"""Verifiers. Each YAML under conf/verifier/ names a ``_target_`` called with ``study=`` plus its keys.

An oracle knows the ground truth, and only the study knows it: ``oracle`` and ``noisy_oracle`` ask the
running study for its own (a centre theta_c on the linear study, the judge network on MNIST, an
acceptance interval on the Gaussian study).
"""
from __future__ import annotations

from typing import Any

from ..config import require_number
from ..errors import ConfigError


def _study_oracle(study: Any, name: str, **kw: Any):
    v = {"verifier": kw}  # every key is checked here, also those a study does not read
    require_number(v, "verifier.radius", 0.0, lo_open=True)
    require_number(v, "verifier.reliability", 0.0, 1.0)
    require_number(v, "verifier.threshold", 0.0, 1.0)
    require_number(v, "verifier.bias")
    make = getattr(study, "oracle", None)
    if make is None:
        raise ConfigError(f"verifier={name} does not fit generator={study.name}: that study has no oracle; "
                          "choose verifier=none or a verifier written for it")
    return make(**kw)


def oracle(study: Any, radius: float = 0.1, reliability: float = 1.0, threshold: float = 0.5):
    """The study's ground-truth verifier (bias 0)."""
    return _study_oracle(study, "oracle", radius=radius, reliability=reliability, threshold=threshold, bias=0.0)


def noisy_oracle(study: Any, radius: float = 0.1, bias: float = 0.3, reliability: float = 1.0,
                 threshold: float = 0.5):
    """The study's oracle moved off the truth by ``bias`` (where the study has a centre) and made
    unreliable by ``reliability``."""
    return _study_oracle(study, "noisy_oracle", radius=radius, reliability=reliability, threshold=threshold,
                         bias=bias)
