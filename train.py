"""Entry point: compose the config with Hydra, then run the generation loop in the Hydra run dir."""
from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from collapselab.errors import CollapseLabError, ConfigError
from collapselab.hydra_callbacks import EXISTED
from collapselab.loop import run
from collapselab.runguard import RunDirBusy, RunInterrupted

log = logging.getLogger("collapselab")


def record_hydra(run_dir: Path, cfg: DictConfig) -> None:
    """What Hydra would write before the job (conf/config.yaml tells it not to): .hydra/{config,hydra,overrides}.yaml
    and the log file, written only once this process holds the run dir for a run of its own config."""
    hc = HydraConfig.get()
    record = run_dir / ".hydra"
    record.mkdir(parents=True, exist_ok=True)
    for name, node in (("config.yaml", cfg), ("hydra.yaml", OmegaConf.create({"hydra": OmegaConf.to_container(hc)})),
                       ("overrides.yaml", OmegaConf.create(list(hc.overrides.task)))):
        (record / name).write_text(OmegaConf.to_yaml(node))
    handler = logging.FileHandler(run_dir / f"{hc.job.name}.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)


def resolved(cfg: DictConfig) -> dict:
    """The config as plain containers; an interpolation that cannot be resolved is a one-line ConfigError."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        raise ConfigError(f"{key or 'the config'}: {str(e).splitlines()[0]}. Fix the ${{...}} interpolation "
                          "(an unset environment variable takes a default: ${oc.env:NAME,default})") from None


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | None:
    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    error_file = run_dir / "error.txt"
    claimed = []  # set once this process holds run_dir for its own config: only then does it write there

    def on_claimed() -> None:
        record_hydra(run_dir, cfg)
        claimed.append(True)

    try:
        plain = resolved(cfg)
        out = run(plain, run_dir, on_claimed, refuse_foreign=not plain.get("adopt_dir", False))
        error_file.unlink(missing_ok=True)
        return out
    except RunInterrupted as e:  # SIGTERM / SIGINT: finished generations are saved; the loop said so
        sys.exit(128 + e.signum)
    except RunDirBusy as e:  # another process holds this directory: touch nothing in it
        if hc.mode == RunMode.MULTIRUN:
            log.warning("skipped: %s", e)  # a sweep re-run while the first is still going
            return None
        log.error("%s", e)
        sys.exit(2)
    except Exception as e:
        if not claimed and EXISTED.get(str(run_dir)) is False:  # refused before any write: leave no empty folder
            try:
                run_dir.rmdir()
            except OSError:
                pass  # not empty, or not ours to remove
        if not claimed and hc.mode == RunMode.MULTIRUN and isinstance(e, ConfigError) and run_dir.is_dir():
            try:  # a sweep job's own folder keeps the record and the config error that failed it (summaries read it)
                on_claimed()
            except OSError:
                pass
        if claimed:  # a refused process writes nothing into another run's directory
            try:
                error_file.write_text(traceback.format_exc())  # kept beside the job's finished generations
            except OSError:
                pass  # an unwritable run dir: the message below says so
        if hc.mode == RunMode.MULTIRUN:
            log.error("%s%s", e, f" (details in {error_file})" if claimed else "")
            raise  # the launcher records the failure; the other jobs go on
        if isinstance(e, CollapseLabError):
            log.error("%s", e)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
