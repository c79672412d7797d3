"""The linear-regression study (docs/theory.md; the paper's sections 2-4), batched over `replicates` chains."""
from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .. import theory  # noqa: E402
from ..batch import Batch  # noqa: E402
from ..config import check_training_sets, require_choice, require_int, require_number  # noqa: E402
from ..data.linear import DTYPE, make_linear_data  # noqa: E402
from ..errors import ConfigError  # noqa: E402
from ..plotting import save_figure  # noqa: E402
from ..components import build  # noqa: E402
from ..generators.linear import LinearGenerator  # noqa: E402
from ..interfaces import KnowledgeCentre, Policy, RegressionModel  # noqa: E402
from ..metrics.chains import mean_se  # noqa: E402
from ..rng import make_rng  # noqa: E402
from ..sampling import Collected, DrawLayout, check_pool, verifier_in_use  # noqa: E402
from ..verifiers.base import build_verifier  # noqa: E402
from . import ToyStudy, check_float64_study, theory_parameters  # noqa: E402
from ..verifiers.linear import unit_vector  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_N_SYNTHETIC = 100  # samples a generation per singular direction (or in all, gaussian design)
HEADLINE = ("param_error", "center_error", "theory_param_error", "accept_rate")


class LinearStudy(ToyStudy):
    """Fixed-design Gaussian linear regression; the generator is OLS, verifiers have a centre theta_c."""

    name = "linear"
    headline = HEADLINE

    def __init__(self, cfg: dict, device: torch.device, policy: Policy) -> None:
        check_float64_study(cfg, device, "linear")
        self.dim = require_int(cfg, "data.dim", 1)
        self.n_real = require_int(cfg, "data.n_real", 1)
        if self.n_real < self.dim:
            raise ConfigError(f"data.n_real={self.n_real} is below data.dim={self.dim}: OLS on the real data needs n_real >= dim")
        self.sigma = require_number(cfg, "data.noise_std", 0.0, lo_open=True)
        self.theta_star = theta_star = require_number(cfg, "data.theta_star")
        self.design = require_choice(cfg, "generator.design", ("singular", "gaussian"))
        self.policy = policy
        self.replicates = int(cfg["replicates"])
        self.seed = int(cfg["seed"])
        self.device = device
        self.n_synthetic = policy.synthetic_size(1, DEFAULT_N_SYNTHETIC)
        if self.design == "gaussian" and not policy.uses_real and self.n_synthetic < self.dim:
            raise ConfigError(
                f"policy.n_synthetic={self.n_synthetic} is too small: OLS on {self.dim}-dimensional Gaussian "
                f"covariates needs at least data.dim={self.dim} samples; use policy.n_synthetic>={self.dim + 2}"
            )
        check_training_sets(policy, int(cfg["generations"]), self.n_real, self.dim + 1, DEFAULT_N_SYNTHETIC,
                            self.replicates, unit=self.dim if self.design == "singular" else 1)
        self.data = make_linear_data(self.dim, self.n_real, self.sigma, theta_star, self.replicates,
                                     make_rng(self.seed, 0, "data")).to(device)
        self.data.bias_direction = unit_vector(self.dim, make_rng(self.seed, 0, "center")).to(device)
        self.real = self.data.real

        self.gen_node = cfg["generator"]
        self.new_generator(0)  # checks the generator's keys now, not after generation 0

        self.verifier = build_verifier(cfg["verifier"], {"data": self.data, "device": device}, "generator=linear")
        largest = policy.synthetic_size(max(int(cfg["generations"]), 1), DEFAULT_N_SYNTHETIC)
        groups = self.dim if self.design == "singular" else 1
        check_pool(self.verifier, policy.filters, largest * groups, groups, self.replicates, (self.dim + 2) * 8)
        self.draw_layout = DrawLayout(flat=False, keep_chains=True, hint="Use a larger verifier.radius (a wider "
                                      "acceptance band accepts more candidates), or rank: verifier.keep_fraction.")
        # the closed forms describe the centre verifier theta* + bias * u (oracle, noisy_oracle) keeping by its band's
        # verdict (not its reward's tilt: that tilts the kept design too, and has no closed form here)
        self.verified = verifier_in_use(self.verifier, policy.filters)
        p = theory_parameters(self.verifier)
        self.theory_applies = p.get("selection") == "band"
        self.radius = p["radius"] if self.theory_applies else None
        self.reliability = p["reliability"] if self.theory_applies else 1.0

    # ----- the loop's interface -------------------------------------------------------------
    def quota(self, generation: int) -> torch.Tensor:
        """[R, G] synthetic samples per chain and group (a singular direction each, or one group for the Gaussian
        design) for this generation."""
        n = self.policy.synthetic_size(generation, DEFAULT_N_SYNTHETIC)
        groups = self.dim if self.design == "singular" else 1
        return torch.full((self.replicates, groups), n, dtype=torch.long, device=self.device)

    def new_generator(self, generation: int) -> LinearGenerator:
        return build(self.gen_node, "generator", directions=self.data.directions, noise_std=self.sigma,
                     replicates=self.replicates, protocol=RegressionModel)

    def fresh_real(self, generation: int, n: int | None) -> Batch:
        """n (None: data.n_real) new pairs of the truth for generation ``generation``: a new Gaussian design
        (shared by the chains, like the real one) and new noise per chain."""
        fresh = make_linear_data(self.dim, n or self.n_real, self.sigma, self.theta_star, self.replicates,
                                 make_rng(self.seed, generation, "fresh"))
        return fresh.real.to(self.device)

    def prepare_verifier(self, model: LinearGenerator, generation: int) -> None:
        """Linear verifiers do not train."""

    def draw_metrics(self, synthetic: Batch) -> None:
        """No metrics of the drawn set beyond the acceptance rate."""
        return None

    def evaluate(self, model: LinearGenerator, generation: int, rng: torch.Generator) -> dict[str, float | None]:
        err = (model.theta - self.data.theta_star).pow(2).sum(-1)
        row: dict[str, float | None] = {}
        row["param_error"], row["param_error_se"] = mean_se(err)
        if isinstance(self.verifier, KnowledgeCentre):  # a verifier with a knowledge centre theta_c
            cerr = (model.theta - self.verifier.center).pow(2).sum(-1)
            row["center_error"], row["center_error_se"] = mean_se(cerr)
        row["theory_param_error"] = self.theory_param_error(generation)
        return row

    # ----- theory --------------------------------------------------------------------------
    @property
    def _mu(self):
        return self.data.singular_values.cpu().numpy()

    def _offsets(self):
        d = (self.verifier.center - self.data.theta_star) @ self.data.directions.T
        return d.cpu().numpy()

    def theory_param_error(self, generation: int) -> float | None:
        """The closed-form E||theta_t - theta*||^2 where one applies, else None."""
        base = theory.real_only_risk(self._mu, self.sigma)
        if generation == 0:
            return base
        form = self.policy.theory(verified=self.verified)
        if form == "replace":
            return base + generation * theory.replace_growth(self.dim, self.n_synthetic, self.sigma, self.design)
        if form == "accumulate":
            return base + theory.accumulate_growth(self._mu, generation, self.n_synthetic, self.n_real, self.sigma,
                                                   self.design)
        if form == "mix" and self.design == "singular":
            k = self.policy.real_count(self.dim * self.n_synthetic)
            if k % self.n_real == 0:  # the real share is the real set itself, repeated: the directions decouple
                return theory.linear_mix(self._mu, generation, self.n_synthetic, k // self.n_real, self.sigma)
        if (form == "verify" and self.theory_applies and generation == 1 and self.design == "singular"
                and self.reliability == 1.0):
            return theory.one_round_risk(self._mu, self._offsets(), self.radius, self.sigma, self.n_synthetic)
        return None

    def summary_extras(self) -> dict:
        out: dict = {"theory_real_only_param_error": theory.real_only_risk(self._mu, self.sigma)}
        if (self.policy.theory(verified=self.verified) == "verify" and self.theory_applies
                and self.design == "singular" and self.reliability == 1.0):
            dist = float((self.verifier.center - self.data.theta_star).pow(2).sum())
            out["theory_contraction_factor"] = theory.contraction_factor(self.radius, self.sigma)
            out["theory_stationary_param_error"] = theory.stationary_risk(dist, self.dim, self.radius, self.sigma,
                                                                          self.n_synthetic)
            out["theory_one_round_param_error"] = self.theory_param_error(1)
        return out

    # ----- state and pictures --------------------------------------------------------------
    def pack_synthetic(self, batch: Batch) -> dict:
        return {"x": batch.x.cpu(), "y": batch.y.cpu()}

    def unpack_synthetic(self, state: dict) -> Batch:
        return Batch(state["x"].to(self.device, DTYPE), state["y"].to(self.device, DTYPE))

    def figure(self, model: LinearGenerator, generation: int, col: Collected | None):
        """Fit plot of chain 0: candidates (accepted vs rejected) and theta_t beside theta*, theta_c."""
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4))
        ts = self.data.theta_star
        if col is None:
            x, y = self.real.x[0], self.real.y[0]
            ax0.scatter((x @ ts).cpu().numpy(), y.cpu().numpy(), s=8, c="tab:blue", label="real data")
        else:
            x, y = col.first_x, col.first_y
            t = (x @ ts).cpu().numpy()
            if col.first_mask is None:  # nothing was verified
                ax0.scatter(t, y.cpu().numpy(), s=4, c="tab:gray", alpha=0.4, label="candidates")
            else:
                acc = col.first_mask.bool()
                ax0.scatter(t[~acc.cpu().numpy()], y[~acc].cpu().numpy(), s=4, c="tab:red", alpha=0.4, label="rejected")
                ax0.scatter(t[acc.cpu().numpy()], y[acc].cpu().numpy(), s=4, c="tab:green", alpha=0.4,
                            label="accepted")
        lim = [float((x @ ts).min()), float((x @ ts).max())]
        ax0.plot(lim, lim, "k-", lw=1, label="x^T theta*")
        ax0.set_xlabel("x^T theta*")
        ax0.set_ylabel("y")
        ax0.set_title(f"generation {generation}: {'real data' if col is None else 'candidates'} (chain 0)")
        ax0.legend(fontsize=8)
        idx = np.arange(self.dim)
        ax1.bar(idx - 0.2, model.theta[0].cpu().numpy(), width=0.4, label="theta_t (chain 0)")
        ax1.scatter(idx, ts.cpu().numpy(), c="k", marker="_", s=200, label="theta*")
        if isinstance(self.verifier, KnowledgeCentre) and self.verifier.center.dim() == 1:
            ax1.scatter(idx + 0.2, self.verifier.center.cpu().numpy(), c="tab:orange", marker="x", label="theta_c")
        ax1.set_xlabel("coordinate")
        ax1.set_title("fit")
        ax1.legend(fontsize=8)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.9, wspace=0.2)
        return fig

    def save_samples(self, path: Path, model: LinearGenerator, generation: int, col: Collected | None, tb) -> None:
        """gen_NNN/samples.png and the same picture in TensorBoard (rendered once)."""
        fig = self.figure(model, generation, col)
        tb.log_image("samples", save_figure(fig, path), generation)
