"""Studies (tasks) bind a generator, its data, its verifiers and its metrics for the generation loop.

The generator's YAML names its study by a dotted class path (``study: collapselab.studies.mnist.MNISTStudy``);
a study is built as ``Study(cfg, device, policy)`` and follows ``collapselab.interfaces.Study``.
"""
from __future__ import annotations

import torch

from ..components import check_protocol, locate
from ..errors import ConfigError
from ..interfaces import Policy, Study, TheoryParameters, Verifier, load_state, state_of


class ToyStudy:
    """What the batched float64 studies (linear, gaussian) share: their verifier's state is saved as it is."""

    verifier: Verifier | None

    def verifier_state(self) -> dict | None:
        return state_of(self.verifier)

    def load_verifier_state(self, state: dict | None) -> None:
        load_state(self.verifier, state)


def theory_parameters(verifier: Verifier | None) -> dict:
    """What the closed forms read of a verifier (``interfaces.TheoryParameters``); {} where it declares nothing."""
    return verifier.theory_parameters() if isinstance(verifier, TheoryParameters) else {}


def check_float64_study(cfg: dict, device: torch.device, study: str) -> None:
    """The checks every batched float64 study (linear, gaussian) opens with: a device with float64 and
    the study's own data group."""
    if device.type == "mps":
        raise ConfigError(f"generator={study} runs in float64, which MPS lacks: use device=cpu or device=cuda")
    data = (cfg.get("data") or {}).get("name")
    if data != study:
        raise ConfigError(f"data={data} does not fit generator={study}: drop the data override "
                          f"(generator={study} selects data={study})")


def build_study(cfg: dict, device: torch.device, policy: Policy):
    """The study named by ``cfg["study"]``; it checks that data, generator and verifier fit it."""
    path = cfg.get("study")
    gen = (cfg.get("generator") or {}).get("name", "?")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"generator={gen} names no study: its YAML needs `study: package.module.StudyClass` "
                          "(e.g. collapselab.studies.mnist.MNISTStudy)")
    try:
        cls = locate(path)
        if not isinstance(cls, type):
            raise ImportError(f"{path} is a {type(cls).__name__}, not a class")
    except Exception as e:  # noqa: BLE001 - ImportError, or a module that fails on import
        raise ConfigError(f"study={path!r} (from generator={gen}) cannot be imported: {str(e).splitlines()[0]}") from None
    study = cls(cfg, device, policy)
    check_protocol(study, Study, f"study={path}")
    return study
