"""Entry point: compose the config with Hydra, then run the generation loop in the Hydra run dir."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from collapselab.errors import CollapseLabError
from collapselab.loop import run

log = logging.getLogger("collapselab")


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        return run(OmegaConf.to_container(cfg, resolve=True), run_dir)
    except CollapseLabError as e:
        log.error("%s", e)
        if hc.mode == RunMode.MULTIRUN:
            raise  # the launcher records the failure; the other jobs go on
        sys.exit(2)


if __name__ == "__main__":
    main()
