"""Build a component from its YAML node with Hydra's ``instantiate``: ``_target_`` + kwargs, plus offered parts."""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from .errors import CollapseLabError, ConfigError

BOOKKEEPING = ("name",)  # YAML keys that label a component but are not constructor kwargs


def _import_error(label: str, target: str, e: Exception) -> ConfigError:
    detail = str(e).splitlines()[0] if str(e) else type(e).__name__
    return ConfigError(f"{label}: cannot import _target_ {target!r} ({detail}). Check the dotted path; a class "
                       "outside the package needs its folder on PYTHONPATH")


def locate(path: Any) -> Any:
    """The object at dotted ``path`` (``package.module.Name``); ImportError naming what failed."""
    if not isinstance(path, str) or not path or any(not p.isidentifier() for p in path.split(".")):
        raise ImportError(f"{path!r} is not a dotted path")
    parts = path.split(".")
    for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as e:
            if e.name is not None and not ".".join(parts[:i]).startswith(e.name):
                raise  # the module exists but imports something missing
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                raise ImportError(f"{'.'.join(parts[:i])} has no attribute {name!r}")
            obj = getattr(obj, name)
        return obj
    raise ImportError(f"no module named {parts[0]!r}")


def _signature(fn: Any) -> tuple[set[str] | None, list[str]]:
    """(parameter names, or None when ``fn`` takes **kwargs; required parameter names)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature to read: accept everything
        return None, []
    required = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None, required
    return {p.name for p in params}, required


def protocol_members(protocol: type) -> list[str]:
    """The attributes and methods a runtime-checkable protocol asks for (its own and its protocol bases')."""
    names: list[str] = []
    for base in reversed(protocol.__mro__):
        if not getattr(base, "_is_protocol", False) or base.__name__ in ("Protocol", "Generic"):
            continue
        for n in [*getattr(base, "__annotations__", {}), *vars(base)]:
            if (not n.startswith("_") or n == "__call__") and n not in names:
                names.append(n)
    return names


def check_protocol(obj: Any, protocol: type, label: str) -> None:
    """``obj`` follows ``protocol`` (``isinstance`` on a runtime-checkable protocol), or one ConfigError naming what
    it lacks."""
    if not isinstance(obj, protocol):
        lacks = [n for n in protocol_members(protocol) if not hasattr(obj, n)]
        raise ConfigError(f"{label}: {type(obj).__name__} does not follow collapselab.interfaces.{protocol.__name__}: "
                          f"it lacks {', '.join(lacks) or 'a member'} (see docs/extending.md)")


def build(node: dict, group: str, drop: tuple[str, ...] = BOOKKEEPING, offer: dict[str, Any] | None = None,
          context: str = "", protocol: type | None = None, **callsite: Any) -> Any:
    """``node["_target_"](**node_kwargs, **parts)``; every configuration failure is one ConfigError naming ``group``.

    ``callsite`` kwargs are always passed (what only the running code knows: a device, data shapes).
    ``offer`` holds parts a study makes available (nets, data, device, ...): each is passed only if the
    target's signature names it, so a component receives what it uses and nothing else. A required
    parameter that neither the YAML nor the offer supplies means the component does not fit the study
    (``context``, e.g. "generator=linear"). A ConfigError raised by the constructor passes through
    unchanged; any other exception from it is a bug and keeps its traceback. ``protocol``: the built part must
    follow it (collapselab.interfaces), checked here, once.
    """
    label = f"{group}={node.get('name', '?')}"
    target = node.get("_target_")
    if not target:
        raise ConfigError(f"{label} has no _target_: add `_target_: package.module.Class` to its YAML")
    try:
        fn = locate(target)
    except Exception as e:  # noqa: BLE001 - ImportError, or a module that fails on import
        raise _import_error(label, target, e) from None
    kwargs = {k: v for k, v in node.items() if k not in drop}
    names, required = _signature(fn)
    parts = {k: v for k, v in (offer or {}).items() if names is None or k in names}
    given = {**parts, **callsite}
    missing = [k for k in required if k not in kwargs and k not in given and k != "_target_"]
    if missing and offer is not None and any(k not in kwargs for k in missing):
        raise ConfigError(f"{label} does not fit {context or 'this study'}: it needs {', '.join(missing)}, which "
                          f"that study does not offer (it offers {', '.join(sorted(offer))})")
    unknown = sorted(k for k in kwargs if k != "_target_" and names is not None and k not in names)
    if unknown or missing:
        what = f"does not take these keys: {', '.join(unknown)}" if unknown else f"needs the keys {', '.join(missing)}"
        raise ConfigError(f"{label}: {target} {what}. Fix the keys under `{group}:` in its YAML")
    clash = sorted(set(callsite) & set(node))
    if clash:
        raise ConfigError(f"{label}: {', '.join(f'{group}.{k}' for k in clash)} is set by the study at run time; "
                          "remove it from the YAML")
    try:
        make = instantiate(kwargs, _partial_=True, _convert_="all")  # YAML values as plain containers
    except InstantiationException as e:  # a nested _target_ that cannot be imported or built
        cause = e.__cause__
        if isinstance(cause, CollapseLabError):
            raise cause from None
        raise _import_error(label, target, e) from None
    obj = make(**given)  # the parts as they are (not converted to configs)
    if protocol is not None:
        check_protocol(obj, protocol, label)
    return obj
