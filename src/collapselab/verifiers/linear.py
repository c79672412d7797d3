"""Verifiers for the regression data (linear, gaussian): a knowledge centre theta_c and a radius r; on the
Gaussian data also the exact density ratio p_data / p_model (``oracle_ratio``)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..config import check_number
from ..errors import ConfigError
from ..interfaces import GaussianModel
from ..theory import SQRT_2_OVER_PI
from .base import apply_reliability, ranking_keys


def unit_vector(dim: int, rng: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
    """A seeded direction u with ||u|| = 1, [d]."""
    u = torch.randn(dim, generator=rng, dtype=dtype)
    return u / u.norm()


class CenterVerifier:
    """Accept (x, y) iff |y - x^T theta_c| <= r ||x|| + sigma sqrt(2/pi); optional reliability rho. Or rank
    (``keep_fraction``) by the quadratic reward score = -(y - x^T theta_c)^2 / (2 w^2), w = r ||x|| + sigma
    sqrt(2/pi) the band's half-width: the band's edge scores -1/2.

    ``oracle`` is theta_c = theta*; ``noisy_oracle`` is theta_c = theta* + bias * u.
    """

    density_ratio = False  # the score is a reward, not log p_data / p_model
    score_max = 0.0  # the reward at the centre: selection=tilt accepts with probability exp(score / T)

    def __init__(self, center: Tensor, radius: float | Tensor, noise_std: float, reliability: float = 1.0,
                 bias: float | None = None, keep_fraction: float | None = None, selection: str = "top",
                 temperature: float = 1.0) -> None:
        self.keep_fraction = keep_fraction  # None: verdicts; a share: ranking by score
        self.selection, self.temperature = selection, float(temperature)
        self.bias = bias  # ||theta_c - theta*|| when the centre is theta* + bias * u (the closed forms read it)
        self.center = center  # [d] or [R, d] (one centre per chain)
        self.radius = radius if isinstance(radius, Tensor) else float(radius)  # scalar or [R]
        self.noise_std = float(noise_std)
        self.reliability = float(reliability)

    def theory_parameters(self) -> dict:
        """What the closed forms read (``interfaces.TheoryParameters``): verdicts by the band, or its reward's tilt."""
        tilt = self.keep_fraction is None and self.selection == "tilt"
        return {"selection": "tilt" if tilt else "band" if self.keep_fraction is None else None, "bias": self.bias,
                "radius": self.radius, "reliability": self.reliability, "temperature": self.temperature}

    def _residual_and_width(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """|y - x^T theta_c| and the band's half-width r ||x|| + sigma sqrt(2/pi), both shaped like y."""
        lead = [1] * (y.dim() - 1)
        c = self.center if self.center.dim() == 1 else self.center.view(-1, *lead, self.center.shape[-1])
        resid = (y - (x * c).sum(-1)).abs()
        r = self.radius.view(-1, *lead) if isinstance(self.radius, Tensor) else self.radius
        return resid, r * x.norm(dim=-1) + self.noise_std * SQRT_2_OVER_PI

    def __call__(self, x: Tensor, y: Tensor, rng: torch.Generator) -> Tensor:
        """x [..., d] broadcastable to y [R, ...] + [d] -> bool, shaped like y (chains on the first axis)."""
        resid, width = self._residual_and_width(x, y)
        return apply_reliability(resid <= width, self.reliability, rng)

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """The quadratic reward -(resid / width)^2 / 2, shaped like y: higher is nearer the centre."""
        resid, width = self._residual_and_width(x, y)
        return -0.5 * (resid / width).pow(2).expand_as(y)

    def state_dict(self) -> dict:
        return {"center": self.center.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.center = state["center"].to(self.center)


# ----- oracle / noisy_oracle of the regression studies (conf/verifier/truth/*_{linear,gaussian}.yaml) ---------
RADIUS, BIAS = 0.1, 0.3  # the defaults of r and Delta (the paper's linear setting)


def _centre(data, radius, bias, reliability, keep_fraction, selection, temperature, who) -> CenterVerifier:
    """theta_c = theta* + bias * u (u: the data's seeded unit vector), band radius r, reliability rho; with
    ``keep_fraction`` it ranks by its quadratic reward instead."""
    r = check_number("verifier.radius", RADIUS if radius is None else radius, 0.0, lo_open=True,
                     hint="The radius r widens the acceptance band |y - x^T theta_c| <= r||x|| + sigma_c.")
    rho = check_number("verifier.reliability", reliability, 0.0, 1.0)
    delta = check_number("verifier.bias", BIAS if bias is None else bias)
    kf = ranking_keys(keep_fraction, selection, temperature, rho, who=who)
    return CenterVerifier(data.theta_star + delta * data.bias_direction, r, data.noise_std, rho, bias=delta,
                          keep_fraction=kf, selection=selection, temperature=temperature)


def noisy_oracle(data, radius: float | None = None, bias: float | None = None, reliability: float = 1.0,
                 keep_fraction: float | None = None, selection: str = "top", temperature: float = 1.0) -> CenterVerifier:
    """theta_c = theta* + bias * u: an imperfect knowledge of the truth (conf/verifier/truth/noisy_oracle_*.yaml)."""
    return _centre(data, radius, bias, reliability, keep_fraction, selection, temperature, "verifier=noisy_oracle")


def oracle(data, radius: float | None = None, reliability: float = 1.0, keep_fraction: float | None = None,
           selection: str = "top", temperature: float = 1.0) -> CenterVerifier:
    """theta_c = theta*: the ground truth's band of radius r (conf/verifier/truth/oracle_{linear,gaussian}.yaml)."""
    return _centre(data, radius, 0.0, reliability, keep_fraction, selection, temperature, "verifier=oracle")


class OracleRatioVerifier:
    """The exact log density ratio log p_data(y) - log p_model(y) of the Gaussian data (generator=gaussian), per chain: p_data = N(mu*,
    sigma^2), p_model = N(mu_t, var_t) read from the current generator before each draw (``observe``). With
    ``selection=drs`` it keeps quota of quota / keep_fraction candidates in proportion to p_data / p_model, which as the
    pool grows (keep_fraction -> 0) are exact samples of p_data (Azadi et al. 2019, discriminator rejection sampling
    with the true ratio)."""

    density_ratio = True

    def __init__(self, mean: float, std: float, keep_fraction: float, selection: str = "drs",
                 temperature: float = 1.0) -> None:
        self.mean, self.var = float(mean), float(std) ** 2
        self.keep_fraction, self.selection, self.temperature = keep_fraction, selection, float(temperature)
        self.mu: Tensor | None = None  # [R] the model's means, set by observe
        self.model_var: Tensor | None = None

    def observe(self, model) -> None:
        """Read the current generator's mean and variance per chain (``interfaces.GaussianModel``: mu [R], var [R])."""
        if not isinstance(model, GaussianModel):
            raise ConfigError(f"verifier=oracle_ratio reads p_model from the generator's moments(), which "
                              f"{type(model).__name__} lacks: use generator=gaussian")
        mu, var = model.moments()
        self.mu, self.model_var = mu.detach().clone(), var.detach().clone()

    def theory_parameters(self) -> dict:
        """What the closed forms read (``interfaces.TheoryParameters``): the exact ratio's, under drs."""
        return {"selection": "ratio" if self.selection == "drs" else None}

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """y [R, ...] -> log N(y; mu*, sigma^2) - log N(y; mu_r, var_r), shaped like y."""
        if self.mu is None:
            raise RuntimeError("OracleRatioVerifier.score before observe(model)")
        lead = [1] * (y.dim() - 1)
        mu, v = self.mu.view(-1, *lead), self.model_var.view(-1, *lead)
        return (-0.5 * (y - self.mean).pow(2) / self.var + 0.5 * (y - mu).pow(2) / v
                + 0.5 * torch.log(v / self.var))

    def state_dict(self) -> None:
        return None  # read from the generator before every draw


def oracle_ratio(truth, keep_fraction: float = 0.1, selection: str = "drs",
                 temperature: float = 1.0) -> OracleRatioVerifier:
    """verifier=oracle_ratio (generator=gaussian): the exact p_data / p_model, ranked by ``selection`` (drs: the
    density-ratio draw; top, softmax as elsewhere) over quota / keep_fraction candidates."""
    if keep_fraction is None:
        raise ConfigError("verifier=oracle_ratio ranks candidates: set verifier.keep_fraction in (0, 1]")
    kf = ranking_keys(keep_fraction, selection, temperature, who="verifier=oracle_ratio", density_ratio=True)
    return OracleRatioVerifier(float(truth.theta_star[0]), truth.noise_std, kf, selection, temperature)
