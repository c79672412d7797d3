"""Build a component from its YAML node with Hydra's ``instantiate``: ``_target_`` + kwargs, plus call-site kwargs."""
from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from .errors import CollapseLabError, ConfigError

BOOKKEEPING = ("name",)  # YAML keys that label a component but are not constructor kwargs


def build(node: dict, group: str, drop: tuple[str, ...] = BOOKKEEPING, **callsite: Any) -> Any:
    """``node["_target_"](**node_kwargs, **callsite)``; every failure is one ConfigError naming ``group``.

    ``callsite`` holds what only the running code knows (the device, the study, data shapes); the YAML
    holds the rest. A ConfigError raised by the constructor (a bad value) passes through unchanged.
    """
    label = f"{group}={node.get('name', '?')}"
    target = node.get("_target_")
    if not target:
        raise ConfigError(f"{label} has no _target_: add `_target_: package.module.Class` to its YAML")
    clash = sorted(set(callsite) & set(node))
    if clash:
        raise ConfigError(f"{label}: {', '.join(f'{group}.{k}' for k in clash)} is set by the study at run time; "
                          "remove it from the YAML")
    kwargs = {k: v for k, v in node.items() if k not in drop}
    try:
        return instantiate(kwargs, **callsite, _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, CollapseLabError):
            raise cause from None
        if isinstance(cause, TypeError):
            raise ConfigError(f"{label}: {target} does not take these keys: {cause}. "
                              f"Fix the keys under `{group}:` in its YAML") from None
        if cause is None or isinstance(cause, (ImportError, AttributeError)):
            raise ConfigError(f"{label}: cannot import _target_ {target!r} ({str(e).splitlines()[0].split(', set env var')[0]}). "
                              "Check the dotted path; a class outside the package needs its folder on "
                              "PYTHONPATH") from None
        raise
