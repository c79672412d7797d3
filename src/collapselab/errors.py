"""Errors that the command line reports as a message, not a traceback."""


class CollapseLabError(Exception):
    """Base class: anything the user can fix (config, data, run directory)."""


class ConfigError(CollapseLabError):
    """A config value is invalid or two choices do not fit together."""


class DataError(CollapseLabError):
    """A data file is missing, truncated or altered."""


class RunError(CollapseLabError):
    """The run cannot continue (run-dir mismatch, verifier accepts nothing, NaN loss, ...)."""
