"""Hydra callbacks (conf/config.yaml: hydra.callbacks): checks Hydra itself needs before it creates a run dir."""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .errors import ConfigError
from .runguard import check_run_dir

log = logging.getLogger("collapselab")


# the run dir as it was before Hydra made it: train.py removes a folder Hydra made for a run refused before any write
EXISTED: dict[str, bool] = {}


class RunDirCheck(Callback):
    """Refuse a run (or sweep) dir that is a file, unwritable or on a pseudo file system in one line, exit status 2,
    before Hydra creates it: Hydra makes the folder before the task starts, so the check cannot wait for train.py."""

    @staticmethod
    def _check(path: Any, key: str) -> None:
        try:
            EXISTED[str(check_run_dir(str(path), key))] = Path(str(path)).exists()
        except ConfigError as e:
            log.error("%s", e)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")
