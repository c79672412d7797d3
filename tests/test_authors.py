"""The authors' recipe as options: early stopping on the training loss (CVAE and discriminator), the discriminator's
training rule, the authors' test metric (test_nelbo_gray), the presets that put them together, and the pairs that
compare arms by their change since their own generation 0."""
import copy
import math

import pytest
import torch

from collapselab.batch import Batch
from collapselab.config import diff_configs, flatten
from collapselab.errors import ConfigError
from collapselab.generators.vae import VAEGenerator
from collapselab.training import train_minibatch
from collapselab.verifiers.discriminator import DiscriminatorVerifier

from .conftest import compose_cfg, run_cfg
from .test_mnist_loop import tiny


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----- early stopping on the training loss ---------------------------------------------------------------------
def test_training_loss_rule_stops_after_patience_epochs_without_a_fall_and_keeps_the_last_weights():
    """SGD at lr 1.5 on w^2 doubles |w| every step: the loss rises every epoch after the first, so training stops
    after 1 + patience epochs, and the weights are the last epoch's (w0 * (-2)^epochs), not the best epoch's."""
    w = torch.nn.Parameter(torch.tensor([1.0]))
    module = torch.nn.Module()
    module.w = w
    out = train_minibatch(module, lambda idx: (w ** 2).sum(), torch.arange(4), optimizer=torch.optim.SGD([w], lr=1.5),
                          epochs=50, batch_size=4, rng=g(), patience=3, stop_on="train", progress=False)
    assert out.epochs == 4 and out.best_val == math.inf
    assert w.item() == pytest.approx((-2.0) ** 4)
    assert out.train_loss == pytest.approx(((-2.0) ** 3) ** 2)  # the last epoch's loss, before its step


def test_training_loss_rule_needs_no_minimum_improvement():
    """A loss that falls by 1e-6 an epoch counts as falling (the held-out rule needs 1e-3): all epochs run."""
    calls = []

    def loss_fn(idx):
        calls.append(1)
        return p.sum() * 0 + (1.0 - 1e-6 * len(calls))

    p = torch.nn.Parameter(torch.zeros(1))
    module = torch.nn.Module()
    module.p = p
    out = train_minibatch(module, loss_fn, torch.arange(2), optimizer=torch.optim.SGD([p], lr=0.1), epochs=7,
                          batch_size=2, rng=g(), patience=1, stop_on="train", progress=False)
    assert out.epochs == 7
    with pytest.raises(ValueError, match="stop_on"):
        train_minibatch(module, loss_fn, torch.arange(2), optimizer=torch.optim.SGD([p], lr=0.1), epochs=1,
                        batch_size=2, rng=g(), val_fn=lambda: 0.0, stop_on="train", progress=False)


def test_vae_trains_on_every_image_under_the_training_loss_rule():
    dev = torch.device("cpu")
    with pytest.raises(ConfigError, match=r"generator\.early_stopping='val' is invalid"):
        VAEGenerator(dev, early_stopping="val")
    x = (torch.rand(40, 1, 28, 28, generator=g()) > 0.5).float()
    seen = []
    gen = VAEGenerator(dev, arch="mlp", latent_dim=2, epochs=3, batch_size=8, progress=False, bf16=False,
                       lr_schedule="constant", patience=50, early_stopping="train")
    nelbo = gen.model.nelbo
    gen.model.nelbo = lambda xb, *a, **k: seen.append(len(xb)) or nelbo(xb, *a, **k)
    stats = gen.fit(Batch(x, torch.arange(40) % 10), g())
    assert stats["val_nelbo"] is None and stats["epochs"] == 3
    assert sum(seen) == 3 * 40  # every image, every epoch: no held-out split, no held-out pass
    held = VAEGenerator(dev, arch="mlp", latent_dim=2, epochs=1, batch_size=8, progress=False, bf16=False,
                        lr_schedule="constant")
    assert math.isfinite(held.fit(Batch(x, torch.arange(40) % 10), g())["val_nelbo"])


# ----- the discriminator's training rule -----------------------------------------------------------------------
def test_discriminator_trains_on_every_image_with_holdout_zero_and_stops_on_its_training_loss(monkeypatch):
    import collapselab.verifiers.discriminator as mod

    torch.manual_seed(0)
    real = (torch.rand(300, 1, 28, 28, generator=g(1)) < 0.1).float()
    fake = (torch.rand(300, 1, 28, 28, generator=g(2)) < 0.5).float()
    y = torch.zeros(300, dtype=torch.long)
    d = DiscriminatorVerifier(torch.device("cpu"), keep_fraction=0.5, epochs=4, batch_size=64, progress=False,
                              patience=2, holdout=0.0)
    seen = []

    def spy(module, loss_fn, idx, **kw):
        seen.append((len(idx), kw["patience"], kw["stop_on"]))
        return train_minibatch(module, loss_fn, idx, **kw)

    monkeypatch.setattr(mod, "train_minibatch", spy)
    stats = d.fit((real, y), (fake, y), g())
    assert seen == [(600, 2, "train")] and stats == {"discriminator_accuracy": None}
    assert d.score(real[:10], y[:10]).min() > d.score(fake[:10], y[:10]).max()


@pytest.mark.parametrize("key, value, match", [
    ("verifier.patience", 0, r"verifier\.patience=0 is invalid"),
    ("verifier.holdout", 0.9, r"verifier\.holdout=0\.9 is invalid"),
    ("verifier.fake_labels", "uniform", r"verifier\.fake_labels='uniform' is invalid"),
    ("verifier.batch_size", 0, r"verifier\.batch_size=0 is invalid"),
    ("generator.early_stopping", "val", r"generator\.early_stopping='val' is invalid"),
])
def test_recipe_keys_are_checked_before_any_work(tmp_path, key, value, match):
    root = tmp_path / "root"
    with pytest.raises(ConfigError, match=match):
        run_cfg(tiny(root) + ["verifier=discriminator", f"{key}={value}", "generations=1"], tmp_path / "run")
    assert not (root / "nets").exists() and not (tmp_path / "run" / "gen_000").exists()


def test_balanced_fakes_have_an_equal_share_of_every_digit(tmp_path, monkeypatch):
    """fake_labels=balanced: 6,000 a digit against 60,000 real (here 100 against 1,000); real: the real set's labels,
    shuffled (and drawn from the verifier's own stream, so the default's numbers are unchanged)."""
    from collapselab.loop import check_config

    seen = {}
    monkeypatch.setattr(DiscriminatorVerifier, "fit", lambda self, real, fake, rng: seen.update(
        {self.fake_labels: (real[1].clone(), fake[1].clone())}) or {})
    for rule in ("balanced", "real"):
        _, _, study = check_config(compose_cfg(tiny(tmp_path) + ["verifier=discriminator", "verifier.train_size=1000",
                                                                 f"verifier.fake_labels={rule}"]))
        study.prepare_verifier(study.new_generator(0), 1)
    real_y, fake_y = seen["balanced"]
    assert torch.bincount(fake_y, minlength=10).tolist() == [100] * 10
    real_y, fake_y = seen["real"]
    assert torch.equal(torch.sort(fake_y).values, torch.sort(real_y).values) and not torch.equal(fake_y, real_y)


def test_gray_real_images_are_the_grayscale_pixels_and_verifiers_still_draw_binary(tmp_path):
    from collapselab.data.mnist import MNISTData

    binary = MNISTData(str(tmp_path), "fake", 100, 0, torch.device("cpu"))
    gray = MNISTData(str(tmp_path), "fake", 100, 0, torch.device("cpu"), real_pixels="gray")
    assert torch.equal(binary.real.y, gray.real.y) and torch.equal(binary.real.x, (gray.real.x >= 128 / 255).float())
    assert set(binary.real.x.unique().tolist()) == {0.0, 1.0} and len(gray.real.x.unique()) > 2
    assert float(gray.real.x.max()) <= 1.0 and float(gray.real.x.min()) >= 0.0
    assert not torch.equal(gray.fresh(1, 50).x, binary.fresh(1, 50).x)
    assert torch.equal(gray.draw_real(50, g(3)).x, binary.draw_real(50, g(3)).x)  # verifiers see binarised images
    with pytest.raises(ConfigError, match=r"data\.real_pixels='grey' is invalid"):
        MNISTData(str(tmp_path), "fake", 100, 0, torch.device("cpu"), real_pixels="grey")


# ----- the authors' test metric ----------------------------------------------------------------------------------
def test_gray_nelbo_draws_its_noise_after_every_other_metric(tmp_path, fake_root):
    """test_nelbo_gray is the last use of the evaluation stream: every other metric is what it was before the metric
    was added. Replaying the stream's uses in order (sample, test NELBO, decoder means, grayscale NELBO) gives the
    evaluator's two NELBOs exactly."""
    from collapselab.data.mnist import gray
    from collapselab.loop import check_config

    _, _, study = check_config(compose_cfg(tiny(fake_root) + ["progress=false"]))
    study.prepare()
    model = study.new_generator(0)
    model.fit(study.real, g(0))
    ev = study.evaluate_metrics
    row = ev(model, g(5))
    assert list(row)[list(row).index("test_nelbo") + 1] == "test_nelbo_gray"
    r = g(5)
    gen = model.sample(ev.eval_samples, r)
    nelbo = float(model.batch_nelbo(ev.test_x, ev.test_y, r).mean())
    model.decode_mean(gen.y, r)
    gray_nelbo = float(model.batch_nelbo(gray(study.data.mnist.test_x), ev.test_y, r).mean())
    assert (row["test_nelbo"], row["test_nelbo_gray"]) == (nelbo, gray_nelbo)
    assert row["test_nelbo_gray"] != row["test_nelbo"]


# ----- the presets ---------------------------------------------------------------------------------------------
def _diff(a: list[str], b: list[str]) -> set[str]:
    x, y = flatten(compose_cfg(a)), flatten(compose_cfg(b))
    return {k for k in set(x) | set(y) if x.get(k) != y.get(k)}


def test_authors_preset_is_the_authors_pipeline():
    cfg = compose_cfg(["experiment=authors_mnist"])
    gen, v = cfg["generator"], cfg["verifier"]
    assert (gen["lr_schedule"], gen["lr"], gen["epochs"], gen["patience"], gen["early_stopping"], gen["batch_size"],
            gen["latent_dim"], gen["arch"]) == ("constant", 0.001, 200, 5, "train", 128, 20, "conv")
    assert (v["name"], v["selection"], v["conditional"], v["keep_fraction"], v["train_size"], v["epochs"],
            v["patience"], v["batch_size"], v["holdout"], v["fake_labels"]) == (
        "discriminator", "top", False, 0.1, None, 80, 5, 128, 0, "balanced")
    assert cfg["policy"]["name"] == "verify" and cfg["policy"]["n_synthetic"] == 20000
    assert cfg["data"]["n_real"] == 500 and cfg["data"]["real_pixels"] == "gray"
    assert _diff(["experiment=authors_mnist"], ["+arm=authors"]) == set()


def test_each_isolation_arm_switches_one_part_back_to_the_projects():
    cvae = {"generator.lr_schedule", "generator.lr", "generator.epochs", "generator.patience",
            "generator.early_stopping"}
    disc = {"verifier.epochs", "verifier.patience", "verifier.batch_size", "verifier.holdout", "verifier.fake_labels"}
    assert _diff(["+arm=authors_project_cvae"], ["+arm=authors"]) == cvae
    assert _diff(["+arm=authors_project_discriminator"], ["+arm=authors"]) == disc
    assert _diff(["+arm=authors_project_pixels"], ["+arm=authors"]) == {"data.real_pixels"}
    # with both parts back it is the project's recipe with the paper's filter at 20,000, the retained size set
    assert _diff(["+arm=discriminator_top"], ["+arm=authors"]) - {"policy.n_synthetic", "verifier.train_size",
                                                                  "verifier.keep_fraction",
                                                                  "verifier.refit"} == cvae | disc | {"data.real_pixels"}
    top = compose_cfg(["+arm=discriminator_top"])
    assert top["policy"]["n_synthetic"] is None and top["verifier"]["train_size"] is None


def test_runs_made_before_the_recipe_keys_resume():
    """A stored config without the new keys matches the defaults (ADDED_DEFAULTS), not another rule."""
    now = compose_cfg([])
    old = copy.deepcopy(now)
    del old["generator"]["early_stopping"]
    for k in ("batch_size", "patience", "holdout", "fake_labels"):
        del old["verifier"][k]
    del old["data"]["real_pixels"]
    assert diff_configs(old, now) == []
    changed = compose_cfg(["generator.early_stopping=train", "verifier.fake_labels=balanced"])
    assert diff_configs(old, changed) == ["generator.early_stopping", "verifier.fake_labels"]
