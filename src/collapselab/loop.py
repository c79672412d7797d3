"""The one generation loop: fit on real data, then draw, verify, rebuild the training set, refit."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import SUMMARY, append_metrics, gen_dir, load_torch, read_metrics, save_torch, write_failed, write_json
from .config import get, validate_common
from .device import machine, make_deterministic, resolve_device, set_threads
from .errors import ConfigError, RunError
from .interfaces import FreshData, Policy, Prepared
from .policies import build_policy
from .rng import derive_seed, make_rng, seed_everything
from .sampling import draw
from .resume import CHECKPOINT, SYNTHETIC, check_stored_config, claim, finished_generations, resume
from .runguard import LOCK, RunInterrupted, check_run_dir, critical, run_lock, stop_signals
from .studies import build_study
from .tblog import TBLogger

log = logging.getLogger("collapselab")

NOT_METRICS = ("generation", "wall_s", "time", "machine")  # per-row keys that are bookkeeping, not results


class _Clock:
    """Wall seconds per stage of a generation (``row["time"]``: not part of the seeded result)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(time.perf_counter() - t0, 3)


def _generation(study, policy: Policy, t: int, prev_model, history: list, rng: dict):
    """Draw (after generation 0), build the training set, fit and evaluate: (model, row, synthetic, col)."""
    t0 = time.perf_counter()
    col, synthetic, clock = None, None, _Clock()
    if t == 0:
        train = study.real
    else:
        with clock("verifier_fit_s"):
            study.prepare_verifier(prev_model, t)
        with clock("draw_s"):
            synthetic, col = draw(study, prev_model, t, rng["sample"], rng["verify"])
        real = study.fresh_real(t, policy.n_fresh) if policy.fresh else study.real
        train = policy.next_training_set(real, synthetic, history, rng["policy"])
    model = study.new_generator(t)
    with clock("fit_s"):
        fit_stats = model.fit(train, rng["train"])
    with clock("eval_s"):
        metrics = study.evaluate(model, t, rng["eval"])
    row = {"generation": t, "n_train": len(train),
           "accept_rate": None if col is None or col.accepted is None else float(col.accept_rate.mean())}
    if col is not None and col.extra:
        row.update(col.extra)
    row.update(metrics)
    row.update(fit_stats)
    row["wall_s"] = time.perf_counter() - t0
    row["time"] = clock.seconds
    row["machine"] = machine(rng["train"].device.type)
    return model, row, synthetic, col


def check_config(cfg: dict, device: str | None = None):
    """Every config check a run makes before generation 0: (device, policy, study). It reads the config and
    writes nothing: no run directory, no data fetch, no network trained (that is ``study.prepare()``)."""
    validate_common(cfg)
    set_threads(cfg.get("threads", "auto"))  # before any torch work: the numbers do not depend on the launcher
    policy = build_policy(cfg)
    dev = resolve_device(device or cfg.get("device", "auto"))
    make_deterministic(dev)
    study = build_study(cfg, dev, policy)
    if policy.fresh and not isinstance(study, FreshData):
        raise ConfigError(f"policy={policy.name} needs fresh real data each generation, which "
                          f"generator={get(cfg, 'generator.name')}'s study does not offer (no fresh_real): "
                          "use another policy")
    return dev, policy, study


def run(cfg: dict, run_dir: str | Path, on_claimed: Callable[[], None] | None = None,
        refuse_foreign: bool = False) -> dict:
    """Run (or resume) the experiment described by the plain-dict ``cfg`` in ``run_dir``; returns the last row.

    One process at a time holds ``run_dir`` (RunDirBusy otherwise), and only for a run of its own config:
    every config value is checked first, then ``claim`` refuses a dir that holds another run, both before anything is
    written; then ``on_claimed`` runs (train.py
    writes Hydra's record there). SIGTERM / SIGINT stop it cleanly (RunInterrupted) with every finished
    generation on disk, so the same call resumes it. ``refuse_foreign``: a folder that holds files a run does
    not write, and no finished run, is refused too (train.py, unless ``adopt_dir=true``).
    """
    run_dir = check_run_dir(run_dir, "run_dir")  # a file, /proc, an unwritable folder: one line, nothing written
    device, policy, study = check_config(cfg)  # every bad value is refused before anything is written
    new_lock = not (run_dir / LOCK).exists()
    with run_lock(run_dir, announce=False) as say_who, stop_signals():
        try:
            claim(run_dir, cfg, refuse_foreign)
        except RunError:
            if new_lock:  # a refused folder keeps no trace of this process
                (run_dir / LOCK).unlink(missing_ok=True)
            raise
        say_who()
        if on_claimed is not None:
            on_claimed()
        try:
            return _run(cfg, run_dir, device, policy, study)
        except RunInterrupted as e:
            n = len(read_metrics(run_dir))
            if n:
                log.warning("stopped by %s after generation %d: every finished generation is saved; run the same "
                            "command again to resume", e, n - 1)
            else:
                log.warning("stopped by %s before generation 0 finished: nothing was saved; run the same command "
                            "again to start", e)
            raise


def _run(cfg: dict, run_dir: Path, device, policy: Policy, study) -> dict:
    done = finished_generations(run_dir, policy.keeps_history)
    if done and len(done) > int(cfg["generations"]) and (run_dir / SUMMARY).exists():
        check_stored_config(run_dir, cfg, len(done))
        log.info("%s already holds generations 0..%d: nothing to do", run_dir, len(done) - 1)
        log.info("\n%s", format_table(done, tuple(k for k in done[-1] if k not in NOT_METRICS)[:8]))
        return done[-1]
    check_device_type(done, device, cfg)
    log.info("device: %s", device)
    run_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(study, Prepared):
        study.prepare()  # the opening work: load data, fetch or train networks
    seed, n_gen = int(cfg["seed"]), int(cfg["generations"])
    show = bool(cfg.get("progress", True))

    rows, prev_model, history = resume(run_dir, cfg, study, policy)
    start = len(rows)

    tb = TBLogger(run_dir / "tb", start)
    tb.log_hparams(cfg, list(study.headline))
    try:
        bar = tqdm(range(start, n_gen + 1), desc="generations", disable=not show, initial=start, total=n_gen + 1)
        for t in bar:
            seed_everything(derive_seed(seed, t, "init"))
            rng = {s: make_rng(seed, t, s, device) for s in ("sample", "verify", "policy", "train", "eval")}
            model, row, synthetic, col = _generation(study, policy, t, prev_model, history, rng)
            with critical():  # a stop signal waits until the generation's files are all written
                try:
                    _save_generation(run_dir, cfg, study, policy, t, model, row, synthetic, col, tb)
                except OSError as e:  # pictures or TensorBoard on a full disk / unwritable folder
                    raise write_failed(Path(e.filename or gen_dir(run_dir, t)), e) from None
            rows.append(row)
            if t > 0 and policy.keeps_history:
                history.append(synthetic)
            prev_model = model
            bar.set_postfix({k: f"{row[k]:.4g}" for k in study.headline[:2] if isinstance(row.get(k), float)})
    finally:
        tb.close()
    return _finish(run_dir, cfg, study, rows, n_gen, device)


def check_device_type(done: list[dict], device, cfg: dict) -> None:
    """A run is continued on the device type its finished generations were made on (CPU and CUDA kernels give
    different numbers), unless ``allow_device_change=true``; one ConfigError before any work."""
    made_on = (done[-1].get("machine") or {}).get("device") if done else None
    if made_on is None or made_on == device.type or cfg.get("allow_device_change", False):
        return
    raise ConfigError(f"this run's generations 0..{len(done) - 1} were made on {made_on}, and device={cfg.get('device')} "
                      f"resolves to {device.type} here: resume it with device={made_on}, or add "
                      f"allow_device_change=true to continue on {device.type} (its numbers then differ from an "
                      f"uninterrupted {made_on} run)")


def _save_generation(run_dir: Path, cfg: dict, study, policy: Policy, t: int, model, row: dict, synthetic, col,
                     tb) -> None:
    """Pictures, TensorBoard, synthetic set, checkpoint, then the metrics row (which makes it finished)."""
    n_gen = int(cfg["generations"])
    gdir = gen_dir(run_dir, t)
    gdir.mkdir(parents=True, exist_ok=True)
    every = int(cfg.get("samples_every", 1))
    if every and (t % every == 0 or t == n_gen):
        study.save_samples(gdir / "samples.png", model, t, col, tb)
    tb.log_scalars(row, t)
    tb.flush()
    if t > 0 and (policy.keeps_history or cfg.get("keep_synthetic", "auto") is True):
        save_torch(study.pack_synthetic(synthetic), gdir / SYNTHETIC)
    save_torch({"generation": t, "config": cfg, "generator": model.state_dict(),
                "verifier": study.verifier_state(), "metrics": row}, gdir / CHECKPOINT)
    append_metrics(run_dir, row)


def _finish(run_dir: Path, cfg: dict, study, rows: list[dict], n_gen: int, device) -> dict:
    """summary.json, the end-of-run table and where to look."""
    if n_gen + 1 < len(rows):
        log.info("%s already holds generations 0..%d (generations=%d asked): nothing to do",
                 run_dir, len(rows) - 1, n_gen)
    summary = {"run_dir": str(run_dir), "generations_finished": len(rows) - 1, "final": rows[-1],
               "torch_threads": torch.get_num_threads(), "device": str(device), "machine": machine(device.type),
               **study.summary_extras(), "config": cfg}
    write_json(summary, run_dir / SUMMARY)
    log.info("\n%s", format_table(rows, study.headline))
    log.info("run dir: %s", run_dir)
    log.info("open in TensorBoard: tensorboard --logdir %s", run_dir / "tb")
    return rows[-1]


def regenerate_synthetic(run_dir: str | Path, generation: int, device: str | None = None):
    """Re-draw generation ``generation``'s synthetic set exactly, from checkpoint generation-1 and the seed.

    This is what makes ``keep_synthetic=false`` lossless: the draw uses the previous generation's model,
    the verifier state stored with this generation, and the generation's own seeded streams. ``device`` None: the
    device type the generation was made on (its row's ``machine.device``), since another device's kernels and
    random streams give other samples.
    """
    run_dir = Path(run_dir)
    if generation < 1:
        raise ConfigError("generation 0 trains on real data: there is no synthetic set to regenerate")
    prev = load_torch(gen_dir(run_dir, generation - 1) / CHECKPOINT)
    this = load_torch(gen_dir(run_dir, generation) / CHECKPOINT)
    if device is None:
        device = ((this.get("metrics") or {}).get("machine") or {}).get("device") or "cpu"
    cfg = {**this["config"], "device": device, "progress": False}
    dev = resolve_device(device)
    study = build_study(cfg, dev, build_policy(cfg))
    model = study.new_generator(generation - 1)
    model.load_state_dict(prev["generator"])
    study.load_verifier_state(this.get("verifier"))
    seed = int(cfg["seed"])
    synthetic, _ = draw(study, model, generation, make_rng(seed, generation, "sample", dev),
                        make_rng(seed, generation, "verify", dev))
    return synthetic


def format_table(rows: list[dict], keys: tuple[str, ...]) -> str:
    """A per-generation text table of the headline metrics."""
    keys = tuple(k for k in keys if any(r.get(k) is not None for r in rows))
    head = "gen  " + "".join(f"{k:>20}" for k in keys)
    lines = [head]
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            cells.append(f"{'-':>20}" if v is None else f"{v:>20.5g}")
        lines.append(f"{r['generation']:>3}  " + "".join(cells))
    return "\n".join(lines)


__all__ = ["run", "regenerate_synthetic", "format_table", "CHECKPOINT", "SYNTHETIC"]
