"""TensorBoard logging: scalars with step = generation, hyper-parameters for the HParams tab."""
from __future__ import annotations

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from .config import flatten


class TBLogger:
    """One SummaryWriter under <run>/tb; events from an interrupted attempt past ``start`` are purged."""

    def __init__(self, log_dir: Path, start_generation: int) -> None:
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=start_generation or None)

    def log_hparams(self, config: dict, metric_names: list[str]) -> None:
        """Write the run's flattened config into the HParams tab (same run as the scalars)."""
        hp = {}
        for k, v in flatten(config).items():
            if isinstance(v, bool) or isinstance(v, (int, float, str)):
                hp[k] = v
            else:
                hp[k] = str(v)
        exp, ssi, sei = hparams_summary(hp, {name: 0.0 for name in metric_names})
        fw = self.writer._get_file_writer()
        for s in (exp, ssi, sei):
            fw.add_summary(s)

    def log_scalars(self, row: dict, step: int) -> None:
        for k, v in row.items():
            if isinstance(v, dict):  # e.g. row["time"]: seconds per stage -> time/fit_s, ...
                self.log_scalars({f"{k}/{sub}": x for sub, x in v.items()}, step)
                continue
            if k == "generation" or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            self.writer.add_scalar(k, v, step)


    def log_image(self, tag: str, img, step: int) -> None:
        """img: [3, H, W] or [1, H, W] float in [0, 1]."""
        self.writer.add_image(tag, img, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
