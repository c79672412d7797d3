"""The Gaussian toy model of collapse (docs/theory.md; the paper's Appendix A), added through the seam alone.

A 1-D Gaussian N(mu*, sigma^2) is refitted, generation after generation, from n samples of the previous
fit: its mean by the sample mean and (unless ``generator.fit_variance=false``) its variance by the MLE.
It is the d = 1, intercept-only case of the linear study (every x is 1, y is the sample), so the
oracle is the linear study's centre verifier: accept iff |y - mu_c| <= r + sigma sqrt(2/pi), mu_c =
mu* + bias. Replicate chains run as one batched computation, as in the linear study.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from .. import theory  # noqa: E402
from ..batch import Batch  # noqa: E402
from ..checkpoint import fitting_state  # noqa: E402
from ..data.gaussian import make_gaussian_data  # noqa: E402
from ..components import build  # noqa: E402
from ..config import check_training_sets, require_int, require_number  # noqa: E402
from ..errors import ConfigError, RunError  # noqa: E402
from ..interfaces import GaussianModel, Policy  # noqa: E402
from ..metrics.chains import mean_se  # noqa: E402
from ..plotting import save_figure  # noqa: E402
from ..rng import make_rng  # noqa: E402
from ..interfaces import ModelAware  # noqa: E402
from ..sampling import Collected, DrawLayout, check_pool, verifier_in_use  # noqa: E402
from ..verifiers.base import build_verifier  # noqa: E402
from ..theory import SQRT_2_OVER_PI  # noqa: E402
from . import ToyStudy, check_float64_study, theory_parameters  # noqa: E402

DTYPE = torch.float64
HEADLINE = ("param_error", "variance", "theory_param_error", "theory_variance", "accept_rate")


class GaussianGenerator:
    """mu [R] and var [R] of R independent chains; fit by the sample mean and the MLE variance."""

    def __init__(self, replicates: int, noise_std: float, device: torch.device, fit_variance: bool = True) -> None:
        if not isinstance(fit_variance, bool):
            raise ConfigError(f"generator.fit_variance={fit_variance!r} is invalid: choose true or false")
        self.fit_variance, self.sigma = fit_variance, float(noise_std)
        self.mu = torch.zeros(replicates, dtype=DTYPE, device=device)
        self.var = torch.full((replicates,), self.sigma**2, dtype=DTYPE, device=device)

    def fit(self, train: Batch, rng: torch.Generator | None = None) -> dict[str, float]:
        """y [R, N] -> mu [R] (and var [R], the MLE, unless the variance is known)."""
        self.mu = train.y.mean(-1)
        if self.fit_variance:
            self.var = (train.y - self.mu[:, None]).pow(2).mean(-1)
        if not (torch.isfinite(self.mu).all() and torch.isfinite(self.var).all()):
            raise RunError("the Gaussian fit is not finite; check data.std and the training set")
        return {}

    def propose(self, m: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """m candidates per chain: x = 1 as a [1, 1, 1, 1] view, y [R, 1, m] ~ N(mu, var)."""
        R = self.mu.shape[0]
        noise = torch.randn(R, 1, m, generator=rng, dtype=DTYPE, device=self.mu.device)
        x = torch.ones(1, 1, 1, 1, dtype=DTYPE, device=self.mu.device)
        return x, self.mu[:, None, None] + self.var.sqrt()[:, None, None] * noise

    def moments(self) -> tuple[Tensor, Tensor]:
        """mu [R] and var [R] (``interfaces.GaussianModel``)."""
        return self.mu, self.var

    def state_dict(self) -> dict[str, Tensor]:
        return {"mu": self.mu.clone(), "var": self.var.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        state = fitting_state(state, self.state_dict())
        self.mu, self.var = state["mu"].to(self.mu), state["var"].to(self.var)


class GaussianStudy(ToyStudy):
    """Real data: n samples of N(mu*, sigma^2) per chain; metrics: the mean's squared error and the variance."""

    name = "gaussian"
    headline = HEADLINE

    def __init__(self, cfg: dict, device: torch.device, policy: Policy) -> None:
        check_float64_study(cfg, device, "gaussian")
        self.n_real = require_int(cfg, "data.n_real", 2, "The MLE variance needs at least two samples.")
        self.mu_star = require_number(cfg, "data.mean")
        self.sigma = require_number(cfg, "data.std", 0.0, lo_open=True)
        self.replicates, self.seed, self.device, self.policy = int(cfg["replicates"]), int(cfg["seed"]), device, policy
        self.n_synthetic = policy.synthetic_size(1, self.n_real)
        self.gen_node = cfg["generator"]
        self.fit_variance = self.new_generator(0).fit_variance  # checks the generator's keys now
        if self.fit_variance and self.n_synthetic < 2 and not policy.uses_real:
            raise ConfigError(f"policy.n_synthetic={self.n_synthetic} is too small: the MLE variance of one "
                              "sample is 0; use policy.n_synthetic>=2")
        check_training_sets(policy, int(cfg["generations"]), self.n_real, 2, self.n_real, self.replicates)
        self.data = make_gaussian_data(self.n_real, self.mu_star, self.sigma, self.replicates,
                                       make_rng(self.seed, 0, "data"), device)
        self.real = self.data.real
        self.verifier = build_verifier(cfg["verifier"], {"data": self.data, "truth": self.data, "device": device},
                                       "generator=gaussian")
        largest = policy.synthetic_size(max(int(cfg["generations"]), 1), self.n_real)
        groups = 1
        check_pool(self.verifier, policy.filters, largest * groups, groups, self.replicates, 3 * 8)
        self.draw_layout = DrawLayout(flat=False, keep_chains=True, hint="Use a larger verifier.radius (a wider "
                                      "interval accepts more candidates), or rank: verifier.keep_fraction.")
        # which verified closed form applies (docs/theory.md): "band", the oracle's interval |y - (mu* + bias)| <= r +
        # sigma sqrt(2/pi) by verdict; "tilt", its reward's exact tilt; "ratio", the exact p_data / p_model under drs
        self.verified = verifier_in_use(self.verifier, policy.filters)
        p = theory_parameters(self.verifier)
        self.selection_form = p.get("selection")
        self.bias, self.radius, self.reliability = p.get("bias"), p.get("radius"), p.get("reliability", 1.0)
        # tilt: tau^2 = T w^2, w = r + sigma sqrt(2/pi) the band's half-width (x = 1)
        self.tau2 = (p["temperature"] * (p["radius"] + self.sigma * SQRT_2_OVER_PI) ** 2
                     if self.selection_form == "tilt" else None)

    # ----- the loop's interface -------------------------------------------------------------
    def new_generator(self, generation: int) -> GaussianGenerator:
        return build(self.gen_node, "generator", replicates=self.replicates, noise_std=self.sigma, device=self.device,
                     protocol=GaussianModel)

    def fresh_real(self, generation: int, n: int | None) -> Batch:
        """n (None: data.n_real) new samples of the truth per chain for generation ``generation``."""
        return make_gaussian_data(n or self.n_real, self.mu_star, self.sigma, self.replicates,
                                  make_rng(self.seed, generation, "fresh"), self.device).real

    def prepare_verifier(self, model: GaussianGenerator, generation: int) -> None:
        """The interval does not train; the exact density ratio reads the current fit."""
        if isinstance(self.verifier, ModelAware):
            self.verifier.observe(model)

    def quota(self, generation: int) -> torch.Tensor:
        """[R, 1]: this generation's synthetic samples per chain."""
        n = self.policy.synthetic_size(generation, self.n_real)
        return torch.full((self.replicates, 1), n, dtype=torch.long, device=self.device)

    def draw_metrics(self, synthetic: Batch) -> None:
        """No metrics of the drawn set beyond the acceptance rate."""
        return None

    def evaluate(self, model: GaussianGenerator, generation: int, rng: torch.Generator) -> dict[str, float | None]:
        row: dict[str, float | None] = {}
        mu, var = model.moments()
        row["param_error"], row["param_error_se"] = mean_se((mu - self.mu_star).pow(2))
        row["variance"], row["variance_se"] = mean_se(var)
        row["theory_param_error"], row["theory_variance"] = self.theory(generation)
        return row

    def theory(self, generation: int) -> tuple[float | None, float | None]:
        """Closed forms where they apply (docs/theory.md, "Which loops have a closed form"): any generation of
        `replace`, `accumulate`, `accumulate_subsample`, `mix` and `fresh` (unfiltered); `verify` by the exact tilt (known variance) or the exact density
        ratio (large-pool limit; also `verify_accumulate`); generation 1 of `verify` by the band (known variance)."""
        n, m, s, fv, sel = self.n_real, self.n_synthetic, self.sigma, self.fit_variance, self.selection_form
        form = self.policy.theory(verified=self.verified)
        if generation == 0 or form == "replace":
            return (theory.gaussian_param_error(generation, n, m, s, fv), theory.gaussian_variance(generation, n, m, s, fv))
        if form in ("mix", "fresh"):
            return theory.gaussian_mixed(generation, n, m, self._real_share(), s, fv, fresh=form == "fresh")[-1]
        if form == "accumulate":
            return theory.gaussian_accumulate(generation, n, m, s, fv)[-1]
        if form == "accumulate_subsample":
            return theory.gaussian_accumulate_subsample(generation, n, m, s, fv)[-1]
        if sel == "ratio" and form in ("verify", "verify_accumulate"):
            return theory.gaussian_true_ratio(generation, n, m, s, fv, accumulate=form == "verify_accumulate")
        if sel == "tilt" and form == "verify" and not fv:
            return theory.gaussian_tilt(generation, n, m, self.tau2, self.bias, s)[-1][0], s**2
        if generation == 1 and form == "verify" and sel == "band" and not fv and self.reliability == 1.0:
            risk = theory.one_round_risk([math.sqrt(n)], [self.bias], self.radius, s, self.n_synthetic)
            return risk, s**2
        return None, (s**2 if not fv else None)

    def _real_share(self) -> int:
        """Real samples in a training set after generation 0 (mix: its share; fresh: n_fresh)."""
        if self.policy.fresh:
            return self.policy.n_fresh or self.n_real
        return self.policy.real_count(self.n_synthetic)

    def summary_extras(self) -> dict:
        out: dict = {"theory_real_only_param_error": self.sigma**2 / self.n_real}
        form = self.policy.theory(verified=self.verified)
        if form in ("mix", "fresh"):
            out["theory_stationary_param_error"], out["theory_stationary_variance"] = theory.gaussian_mixed_stationary(
                self.n_real, self.n_synthetic, self._real_share(), self.sigma, self.fit_variance, fresh=form == "fresh")
        if form == "verify" and self.selection_form == "tilt" and not self.fit_variance:
            out["theory_tilt_factor"] = theory.tilt_factor(self.tau2, self.sigma)
            out["theory_stationary_param_error"] = theory.gaussian_tilt_stationary(self.n_synthetic, self.tau2,
                                                                                   self.bias, self.sigma)
        if form == "verify" and self.selection_form == "band" and not self.fit_variance:
            out["theory_contraction_factor"] = theory.contraction_factor(self.radius, self.sigma)
            out["theory_stationary_param_error"] = theory.stationary_risk(self.bias**2, 1, self.radius, self.sigma,
                                                                          self.n_synthetic)
            if self.reliability == 1.0:
                out["theory_one_round_param_error"] = self.theory(1)[0]
        return out

    # ----- state and pictures --------------------------------------------------------------
    def pack_synthetic(self, batch: Batch) -> dict:
        return {"y": batch.y.cpu()}  # x is all ones

    def unpack_synthetic(self, state: dict) -> Batch:
        y = state["y"].to(self.device, DTYPE)
        return Batch(torch.ones(*y.shape, 1, dtype=DTYPE, device=self.device), y)

    def save_samples(self, path: Path, model: GaussianGenerator, generation: int, col: Collected | None, tb) -> None:
        """Chain 0: a histogram of the candidates (accepted vs rejected) and the fitted density beside the truth."""
        fig, ax = plt.subplots(figsize=(6, 4))
        if col is None:
            ax.hist(self.real.y[0].cpu().numpy(), bins=30, density=True, color="tab:blue", alpha=0.5, label="real data")
        else:
            y = col.first_y.cpu().numpy()
            bins = np.histogram_bin_edges(y, bins=40)
            if col.first_mask is None:  # nothing was verified
                ax.hist(y, bins=bins, color="tab:gray", alpha=0.5, label="candidates")
            else:
                acc = col.first_mask.cpu().numpy().astype(bool)
                ax.hist([y[acc], y[~acc]], bins=bins, density=False, stacked=True, color=["tab:green", "tab:red"],
                        alpha=0.5, label=["accepted", "rejected"])
            ax.set_ylabel("candidates")
            ax.legend(fontsize=8, loc="upper left")
            ax = ax.twinx()
        grid = np.linspace(self.mu_star - 4 * self.sigma, self.mu_star + 4 * self.sigma, 400)
        fit_mu, fit_var = model.moments()
        for mu, var, style, label in ((self.mu_star, self.sigma**2, "k--", "truth N(mu*, sigma^2)"),
                                      (float(fit_mu[0]), float(fit_var[0]), "tab:orange", "fit (chain 0)")):
            sd = math.sqrt(max(var, 1e-300))
            ax.plot(grid, np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)), style, label=label)
        ax.set_ylabel("density")
        ax.legend(fontsize=8, loc="upper right")
        ax.set_title(f"generation {generation}: {'real data' if col is None else 'candidates'} (chain 0)")
        tb.log_image("samples", save_figure(fig, path), generation)
