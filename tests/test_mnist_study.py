"""The MNIST study: its defaults (the paper's regime), precision (bf16), verifier sizes, the conditional
discriminator, unused verifiers, the decoder-mean FID, every preset for one generation and the README's
first command (slow, real MNIST)."""
import itertools
import json
import math
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from collapselab import device as D
from collapselab.data.mnist import balanced_counts, class_balanced_indices
from collapselab.errors import ConfigError, DataError
from collapselab.generators.vae import VAEGenerator
from collapselab.verifiers.discriminator import DiscriminatorMLP, DiscriminatorVerifier

from .conftest import options, CONF, compose_cfg, run_cfg
from .test_mnist_loop import tiny

MNIST_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def mnist_like_labels() -> torch.Tensor:
    return torch.cat([torch.full((n,), c) for c, n in enumerate(MNIST_CLASS_COUNTS)])


# ----- sizes the data can supply ---------------------------------------------------------------------
def test_balanced_counts_every_image_and_water_filling():
    labels = mnist_like_labels()
    assert balanced_counts(labels, 60000) == MNIST_CLASS_COUNTS  # every real image
    assert balanced_counts(labels, 50000) == [5000] * 10  # equal while every class can supply its share
    c = balanced_counts(labels, 59000)  # classes 5 and 8 (5421, 5851 images) run short: the rest fill in
    assert sum(c) == 59000 and c[5] == 5421 and all(k <= a for k, a in zip(c, MNIST_CLASS_COUNTS))
    assert max(k for k, a in zip(c, MNIST_CLASS_COUNTS) if k < a) - min(k for k, a in zip(c, MNIST_CLASS_COUNTS)
                                                                        if k < a) <= 1
    with pytest.raises(DataError, match="asked for 60001 images; the data holds 60000"):
        balanced_counts(labels, 60001)


def test_class_balanced_indices_unchanged_where_every_class_supplies_its_share():
    labels = mnist_like_labels()
    idx = class_balanced_indices(labels, 2003, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels[idx], minlength=10).tolist()
    assert counts == [201, 201, 201, 200, 200, 200, 200, 200, 200, 200] and len(set(idx.tolist())) == 2003
    every = class_balanced_indices(labels, 60000, torch.Generator().manual_seed(0))
    assert sorted(every.tolist()) == list(range(60000))


def test_train_size_is_checked_before_any_network_trains(tmp_path):
    root = tmp_path / "root"
    for verifier in ("classifier", "discriminator"):
        with pytest.raises(ConfigError, match=r"verifier\.train_size=5000 exceeds the 3000 MNIST training images"):
            run_cfg(tiny(root) + [f"verifier={verifier}", "verifier.train_size=5000", "generations=1"], tmp_path)
    assert not (root / "nets").exists()  # no evaluator, judge or verifier was trained for a run that cannot go
    assert not (tmp_path / "gen_000").exists()


@pytest.mark.slow
def test_train_size_null_is_every_image_and_runs_for_the_discriminator(tmp_path, fake_root):
    rows = run_cfg(tiny(fake_root) + ["verifier=discriminator", "verifier.epochs=1", "generations=1"], tmp_path)
    assert rows[1]["accept_rate"] == pytest.approx(0.1)
    rows = run_cfg(tiny(fake_root) + ["verifier=discriminator", "verifier.epochs=1", "generations=1",
                                      "verifier.train_size=3000"], tmp_path / "all")
    assert rows[1]["n_train"] == 100


# ----- precision ---------------------------------------------------------------------------------------
def test_resolve_bf16(monkeypatch):
    cpu = torch.device("cpu")
    assert D.resolve_bf16(True, cpu) is True and D.resolve_bf16(False, cpu) is False
    monkeypatch.setattr(D, "native_bf16", lambda dev: False)
    assert D.resolve_bf16("auto", cpu) is False  # clean fallback where bf16 is not native
    monkeypatch.setattr(D, "native_bf16", lambda dev: True)
    assert D.resolve_bf16("auto", cpu) is True
    with pytest.raises(ConfigError, match=r"generator\.bf16='fast' is invalid: choose auto, true or false"):
        D.resolve_bf16("fast", cpu)
    with pytest.raises(ConfigError, match="bf16 autocast is supported on cpu and cuda, not mps"):
        D.resolve_bf16(True, torch.device("mps"))


def test_native_bf16_reads_the_cpu_flags(monkeypatch):
    monkeypatch.setattr(D, "_cpu_flags", lambda: {"sse4_2", "avx2"})
    assert D.native_bf16(torch.device("cpu")) is False
    monkeypatch.setattr(D, "_cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert D.native_bf16(torch.device("cpu")) == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_bf16_autocast_on_cpu_trains_in_bf16_and_keeps_the_loss_fp32():
    gen = VAEGenerator(torch.device("cpu"), bf16=True, progress=False)
    x = (torch.rand(16, 1, 28, 28) > 0.5).float()
    y = torch.arange(16) % 10
    seen = {}
    hook = gen.model.decoder.fc.register_forward_hook(lambda m, i, o: seen.update(dtype=o.dtype))
    with gen._autocast():
        loss = gen.model.nelbo(x, y, torch.Generator().manual_seed(0))
    hook.remove()
    assert seen["dtype"] == torch.bfloat16 and loss.dtype == torch.float32
    fp32 = gen.batch_nelbo(x, y, torch.Generator().manual_seed(0))  # metrics: fp32 even when training is bf16
    ref = VAEGenerator(torch.device("cpu"), bf16=False, progress=False)
    ref.model.load_state_dict(gen.model.state_dict())
    assert torch.equal(fp32, ref.batch_nelbo(x, y, torch.Generator().manual_seed(0)))


@pytest.mark.slow
@pytest.mark.parametrize("bf16", ["true", "false", "auto"])
def test_vae_run_at_each_precision_on_cpu(tmp_path, fake_root, bf16):
    rows = run_cfg(tiny(fake_root) + ["device=cpu", f"generator.bf16={bf16}", "generations=1",
                                      "verifier.train_size=500"], tmp_path)
    assert all(math.isfinite(r["test_nelbo"]) and math.isfinite(r["fid"]) and math.isfinite(r["fid_mean"])
               for r in rows)
    summary_bf16 = json.loads((tmp_path / "summary.json").read_text())["bf16"]
    assert summary_bf16 == {"true": True, "false": False, "auto": D.native_bf16(torch.device("cpu"))}[bf16]


# ----- the conditional discriminator ---------------------------------------------------------------------
@pytest.mark.slow
def test_conditional_discriminator_uses_the_label():
    torch.manual_seed(0)
    assert DiscriminatorMLP(10).net[0].in_features == 794 and DiscriminatorMLP().net[0].in_features == 784
    # real: class-c images carry a blob at column c; fake: the same images with a wrong label
    n = 2000
    y = torch.arange(n) % 10
    x = torch.zeros(n, 1, 28, 28)
    x[torch.arange(n), 0, 10, y * 2] = 1.0
    wrong = (y + 1 + torch.randint(0, 9, (n,))) % 10
    g = torch.Generator().manual_seed(0)
    cond = DiscriminatorVerifier(torch.device("cpu"), epochs=20, conditional=True, progress=False)
    acc = cond.fit((x, y), (x, wrong), g)["discriminator_accuracy"]
    plain = DiscriminatorVerifier(torch.device("cpu"), epochs=20, conditional=False, progress=False)
    acc_plain = plain.fit((x, y), (x, wrong), g)["discriminator_accuracy"]
    assert acc > 0.95 and acc_plain < 0.65  # only the conditional one can see an image with the wrong label
    scores = cond.score(x[:10], y[:10]) - cond.score(x[:10], wrong[:10])
    assert (scores > 0).all()


@pytest.mark.slow
def test_conditional_discriminator_runs_and_resumes(tmp_path, fake_root):
    args = tiny(fake_root) + ["verifier=discriminator", "verifier.conditional=true", "verifier.epochs=1",
                              "verifier.train_size=500"]
    rows = run_cfg(args + ["generations=1"], tmp_path)
    assert rows[1]["accept_rate"] == pytest.approx(0.1) and rows[1]["n_train"] == 100
    full = run_cfg(args + ["generations=2"], tmp_path / "full")
    again = run_cfg(args + ["generations=2"], tmp_path)  # resumed from generation 1
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("wall_s", "time")} for r in rs]  # noqa: E731
    assert strip(again) == strip(full)
    with pytest.raises(ConfigError, match=r"verifier\.conditional=true needs labelled samples"):
        run_cfg(args + ["generator.conditional=false"], tmp_path / "x")


# ----- a verifier the policy does not use ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("args", [["policy=replace", "verifier=discriminator"],
                                  ["policy=accumulate", "verifier=classifier"],
                                  ["policy=verify", "verifier=discriminator", "verifier.keep_fraction=1.0"]])
def test_unused_verifier_is_neither_trained_nor_run(tmp_path, fake_root, monkeypatch, args):
    from collapselab.verifiers.mnist import ClassifierVerifier

    def boom(*a, **k):
        raise AssertionError("the verifier was used")

    # built (its keys checked), but its network is never fetched or trained and it never scores a candidate
    monkeypatch.setattr(DiscriminatorVerifier, "fit", boom)
    monkeypatch.setattr(DiscriminatorVerifier, "score", boom)
    monkeypatch.setattr(ClassifierVerifier, "prepare", boom)
    monkeypatch.setattr(ClassifierVerifier, "score", boom)
    rows = run_cfg(tiny(fake_root) + args + ["generations=1"], tmp_path)
    assert rows[1]["accept_rate"] is None and rows[1]["n_train"] >= 100


# ----- metrics and timing ------------------------------------------------------------------------------
@pytest.mark.slow
def test_rows_hold_both_fids_and_stage_times(tmp_path, fake_root):
    rows = run_cfg(tiny(fake_root) + ["verifier=discriminator", "verifier.epochs=1", "generations=1"], tmp_path)
    assert rows[0]["fid_mean"] > 0 and rows[1]["fid_mean"] > 0 and rows[0]["fid_mean"] != rows[0]["fid"]
    assert set(rows[0]["time"]) == {"fit_s", "eval_s"}
    assert set(rows[1]["time"]) == {"verifier_fit_s", "draw_s", "fit_s", "eval_s"}
    assert sum(rows[1]["time"].values()) <= rows[1]["wall_s"] + 1e-3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["fid_mean_real_floor"] > 0


def test_defaults_are_in_the_papers_regime():
    cfg = compose_cfg([])
    assert cfg["verifier"]["name"] == "discriminator" and cfg["verifier"]["keep_fraction"] == 0.1
    assert cfg["verifier"]["train_size"] is None and cfg["generator"]["bf16"] == "auto"
    from collapselab.studies.mnist import DEFAULT_N_SYNTHETIC

    assert cfg["policy"]["n_synthetic"] is None and DEFAULT_N_SYNTHETIC >= 10000


@pytest.mark.parametrize("preset", ["paper_mnist", "paper_mnist_filter", "paper_mnist_filter_cpu",
                                    "paper_mnist_verifier_quality", "paper_mnist_verifier_quality_cpu",
                                    "mnist_retained_size_cpu"])
def test_paper_presets_keep_the_papers_filter(preset):
    """The default discriminator draws by D/(1-D) with the label; the paper's presets keep its top 10% by logit."""
    v = compose_cfg([f"experiment={preset}"])["verifier"]
    assert (v["name"], v["selection"], v["conditional"], v["keep_fraction"]) == ("discriminator", "top", False, 0.1)


# ----- every preset runs (real MNIST, sizes scaled down) ------------------------------------------------------
SCALE_VAE = ["data.eval_samples=500", "data.pr_samples=200", "policy.n_synthetic=200", "policy.growth=100",
             "generator.patience=5", "generator.min_steps=400",  # a generation-0 CVAE good enough for the judge
             "generator.epochs=100"]  # the onecycle presets run 100 anyway (400 steps); caps the constant-rate ones


def sweep_points(preset: str) -> list[list[str]]:
    """One override list per value of each swept key (the other keys at their first value); seeds fixed."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment={preset}"], return_hydra_config=True)
    params = {k: str(v).split(",") for k, v in (cfg.hydra.sweeper.params or {}).items() if k != "seed"}
    if not params:
        return [[]]
    first = {k: v[0] for k, v in params.items()}
    points = []
    for k, vals in params.items():
        for v in vals:
            points.append([f"{kk}={v if kk == k else first[kk]}" for kk in params])
    return [list(p) for p in dict.fromkeys(tuple(p) for p in points)]


@pytest.mark.slow
@pytest.mark.parametrize("preset", options("experiment"))
def test_every_preset_runs_one_generation(tmp_path, real_root, preset):
    base = compose_cfg([f"experiment={preset}"])
    for i, point in enumerate(sweep_points(preset)):
        scale = ["replicates=20"]
        if base["generator"]["name"] == "vae":
            disc = compose_cfg([f"experiment={preset}"] + point)["verifier"]["name"] == "discriminator"
            # a discriminator: one epoch on 5,000 real images against as many samples (not 60,000: drawing them
            # is most of the point's time); a preset's own train_size (a swept point) still wins
            scale = list(SCALE_VAE) + [f"data.root={real_root}"] + (["verifier.epochs=1", "verifier.train_size=5000"]
                                                                     if disc else [])
        rows = run_cfg([f"experiment={preset}", "generations=1", "samples_every=0"] + scale + point,
                       tmp_path / str(i))
        assert [r["generation"] for r in rows] == [0, 1], (preset, point)


def test_sweep_points_cover_each_value():
    pts = sweep_points("paper_mnist_verifier_quality_cpu")
    assert sorted(p[0] for p in pts) == sorted(f"verifier.train_size={v}" for v in (500, 5000, "null"))
    assert len(sweep_points("paper_linear_map")) == 8 + 6 - 1 and sweep_points("paper_linear") == [[]]
    assert sweep_points("paper_mnist") == [[]]
    assert len(list(itertools.chain(*sweep_points("reliability_sweep_mnist_cpu")))) == 3


# ----- the README's first command, as a user runs it (real MNIST, default sizes) ------------------------------
@pytest.mark.slow
def test_default_command_holds_the_gain_at_every_generation(tmp_path, real_root):
    """`python train.py` as a user runs it (3 generations at the default sizes, seed 0). The README's promise rests on
    5 seeds' means (docs/results.md, `reproduce.py mnist_default`); one seed is held to the range those 5 seeds
    span at generations 1-3: test NELBO 11.9-15.9 nats below generation 0's, FID 0.91-1.09x and recall 0.48x or
    more of generation 0's. Bounds with a margin: 10 nats, 1.10x, 0.45x."""
    from .conftest import read_rows, run_train

    p = run_train(f"hydra.run.dir={tmp_path}", f"data.root={real_root}", "progress=false", timeout=3000)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = read_rows(tmp_path)
    assert [r["generation"] for r in rows] == [0, 1, 2, 3]
    g0 = rows[0]
    for r in rows[1:]:
        assert r["test_nelbo"] < g0["test_nelbo"] - 10 and r["fid"] <= 1.10 * g0["fid"], r
        assert r["recall"] >= 0.45 * g0["recall"], r
        assert r["n_train"] == 20000 and r["accept_rate"] == pytest.approx(0.1)


@pytest.mark.slow
def test_unfiltered_retraining_at_the_default_size_loses_recall_and_fid(tmp_path, real_root):
    from .conftest import read_rows, run_train

    """Unfiltered `replace` at 20,000 a generation: generation 2 has lost recall and FID against generation 1
    (docs/results/replace10: recall 0.110 -> 0.042, FID 495 -> 539, test NELBO 106.8 -> 110.5)."""
    p = run_train("policy=replace", "verifier=none", "generations=2", f"hydra.run.dir={tmp_path}",
                  f"data.root={real_root}", "progress=false", timeout=3000)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = read_rows(tmp_path)
    assert rows[2]["recall"] < rows[1]["recall"] and rows[2]["fid"] > rows[1]["fid"], rows
    assert rows[2]["test_nelbo"] > rows[1]["test_nelbo"], rows


# ----- the net cache: one training per network on a shared data root ------------------------------------------
def _fetch_in_a_process(cache_dir: str, log_file: str, barrier) -> None:
    import collapselab.nets as nets
    from collapselab.data.mnist import fake_mnist

    def slow_train(spec, data, device, progress=True):  # stands in for minutes of training
        with open(log_file, "a") as f:
            f.write("trained\n")
        time.sleep(0.5)
        return nets.SmallCNN(spec.widths, spec.feat), 0.5

    nets.train_net = slow_train
    barrier.wait(60)  # both processes ask for the network at the same moment: the overlap is forced, not hoped for
    nets.get_net(nets.EVALUATOR, fake_mnist(), Path(cache_dir), torch.device("cpu"), progress=False)


@pytest.mark.slow  # two fresh interpreters
def test_parallel_jobs_on_one_data_root_train_a_network_once(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fresh interpreters: a forked child of a process that ran torch can hang
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_fetch_in_a_process, args=(str(tmp_path / "nets"), str(tmp_path / "log"), barrier))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    for p in procs:
        if p.is_alive():
            p.terminate()
    assert [p.exitcode for p in procs] == [0, 0]
    assert (tmp_path / "log").read_text().splitlines() == ["trained"]  # the others waited, then loaded its file


def test_an_unreadable_cached_network_is_moved_aside_not_deleted(tmp_path, caplog):
    import collapselab.nets as nets
    from collapselab.data.mnist import fake_mnist

    spec = nets.NetSpec("probe", (4, 4, 4), 8, 100, seed=1, epochs=1)
    path = tmp_path / f"{spec.key(fake_mnist().key)}.pt"
    path.write_bytes(b"not a checkpoint")
    net, _ = nets.get_net(spec, fake_mnist(), tmp_path, torch.device("cpu"), progress=False)
    assert path.exists() and (tmp_path / (path.name + ".unreadable")).read_bytes() == b"not a checkpoint"
    assert "moved to" in caplog.text
    nets.forget(spec.key(fake_mnist().key))
