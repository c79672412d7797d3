"""Closed-form predictions for verified retraining in linear regression (docs/theory.md; the paper's sections 2-4).

Notation: sigma is the label noise, sigma_c = sigma * sqrt(2/pi) the verifier's slack, r its radius.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))


def _phi(t: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * t * t) / np.sqrt(2.0 * np.pi)


def truncated_normal_moments(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m1, m2, m3) of N(0,1) truncated to [a, b]: mean, variance and m3 = -2 * lambda (docs/theory.md)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    pa, pb = _phi(a), _phi(b)
    P = ndtr(b) - ndtr(a)
    m1 = (pa - pb) / P
    m2 = 1.0 + (a * pa - b * pb) / P - m1**2
    lam = ((b**2 - 1) * pb - (a**2 - 1) * pa) / (2 * P) + 3 * (pb - pa) * (b * pb - a * pa) / (2 * P**2) + (
        pb - pa
    ) ** 3 / P**3
    return m1, m2, -2.0 * lam


def _window(radius: float, sigma: float) -> float:
    """Half-width of the acceptance window in units of sigma: (r + sigma_c) / sigma."""
    return (float(radius) + sigma * SQRT_2_OVER_PI) / sigma


def one_round_risk(
    singular_values: ArrayLike,
    center_offsets: ArrayLike,
    radius: float,
    sigma: float = 1.0,
    n_accept: int = 100,
) -> float:
    """Predicted E||theta_1 - theta*||^2 after one verified round on the singular design.

    ``singular_values[j]`` = mu_j of the real design, ``center_offsets[j]`` = v_j^T (theta_c - theta*).
    A radius of ``inf`` means no filtering (every candidate accepted).
    """
    mu = np.asarray(singular_values, dtype=np.float64)
    delta = np.broadcast_to(np.asarray(center_offsets, dtype=np.float64), mu.shape)
    if np.isinf(radius):
        m1, m2, m3 = np.zeros_like(mu), np.ones_like(mu), np.zeros_like(mu)
    else:
        w = _window(radius, sigma)
        m1, m2, m3 = truncated_normal_moments(delta / sigma - w, delta / sigma + w)
    per_dir = sigma**2 * (m2 / n_accept + m1**2 + (m2**2 + m3 * m1) / mu**2)
    return float(per_dir.sum())


def real_only_risk(singular_values: ArrayLike, sigma: float = 1.0) -> float:
    """E||theta_0 - theta*||^2 of OLS on the real design: sigma^2 * sum_j mu_j^-2."""
    mu = np.asarray(singular_values, dtype=np.float64)
    return float(sigma**2 * np.sum(mu**-2.0))


def contraction_factor(radius: float, sigma: float = 1.0) -> float:
    """m2*: variance of N(0,1) truncated to [-w, w], w = (r + sigma_c)/sigma; the per-round contraction."""
    w = _window(radius, sigma)
    return float(truncated_normal_moments(-w, w)[1])


def stationary_risk(
    center_distance_sq: float, dim: int, radius: float, sigma: float = 1.0, n_accept: int = 100
) -> float:
    """Long-run E||theta_t - theta*||^2 ~ ||theta_c - theta*||^2 + d sigma^2 m2* / (n (1 - m2*^2))."""
    m2s = contraction_factor(radius, sigma)
    return float(center_distance_sq + dim * sigma**2 * m2s / (n_accept * (1.0 - m2s**2)))


def replace_growth(dim: int, n_synthetic: int, sigma: float = 1.0, design: str = "singular") -> float:
    """Expected increase of E||theta_t - theta*||^2 per unfiltered `replace` generation.

    Singular design: d sigma^2 / n (n per direction). Gaussian design with n pairs in total:
    sigma^2 E tr((X^T X)^-1) = d sigma^2 / (n - d - 1) (inverse-Wishart mean; needs n > d + 1).
    """
    if design == "singular":
        return dim * sigma**2 / n_synthetic
    if n_synthetic <= dim + 1:
        return float("inf")
    return dim * sigma**2 / (n_synthetic - dim - 1)


def accumulate_growth(singular_values: ArrayLike, generation: int, n_synthetic: int, n_real: int,
                      sigma: float = 1.0, design: str = "singular") -> float:
    """E||theta_t - theta*||^2 - E||theta_0 - theta*||^2 under unfiltered `accumulate` (the real set and every
    synthetic set so far; docs/theory.md).

    OLS on the pooled set moves by a martingale step, theta_s = theta_(s-1) + sigma A_s^-1 X_s^T eps_s with A_s the
    pooled Gram matrix, so the error grows by sigma^2 E tr(A_s^-2 X_s^T X_s) a generation, a shrinking amount:
    - singular design (n per direction, X_s^T X_s = n I): sigma^2 n sum_j 1 / (mu_j^2 + s n)^2, exact given the
      real design's singular values mu_j;
    - Gaussian design (n pairs in total, rows N(0, I), like the real design's): by exchangeability of the N_s =
      n_real + s n rows of A_s, sigma^2 (n / N_s) d / (N_s - d - 1), exact averaged over the real design too.
    With n_real = n the Gaussian sum is d sigma^2 / (n - d - 1) sum_(i=2..t+1) 1/i^2 up to the N_s - d - 1
    denominators, the bound of Gerstgrasser et al. 2024 (arXiv 2404.01413).
    """
    mu2 = np.asarray(singular_values, dtype=np.float64) ** 2
    m, d = int(n_synthetic), len(mu2)
    if design == "singular":
        return float(sigma**2 * m * sum(np.sum((mu2 + s * m) ** -2.0) for s in range(1, generation + 1)))
    total = 0.0
    for s in range(1, generation + 1):
        N = int(n_real) + s * m
        total += float("inf") if N <= d + 1 else m / N * d / (N - d - 1)
    return float(sigma**2 * total)


# ----- the Gaussian toy model (one mean, optionally one variance; docs/theory.md) --------------------
def gaussian_variance(generation: int, n_real: int, n_synthetic: int, sigma: float = 1.0,
                      fit_variance: bool = True) -> float:
    """E[var_t] under `replace`: generation 0 fits the MLE variance on n_real real samples, every later
    generation on n_synthetic samples of the previous fit, so E[var_t] = sigma^2 (n-1)/n ((m-1)/m)^t.
    With a known variance (fit_variance=false) it stays sigma^2."""
    if not fit_variance:
        return float(sigma**2)
    return float(sigma**2 * (n_real - 1) / n_real * ((n_synthetic - 1) / n_synthetic) ** generation)


def gaussian_param_error(generation: int, n_real: int, n_synthetic: int, sigma: float = 1.0,
                         fit_variance: bool = True) -> float:
    """E[(mu_t - mu*)^2] under `replace`: sigma^2/n, plus E[var_(s-1)]/m for every generation s = 1..t
    (the fitted mean of m draws from N(mu_(s-1), var_(s-1))). With m = n this is
    (sigma^2/n) sum_(s=0..t) ((n-1)/n)^s; with a known variance, sigma^2/n + t sigma^2/m."""
    return float(sigma**2 / n_real + sum(gaussian_variance(s - 1, n_real, n_synthetic, sigma, fit_variance)
                                         for s in range(1, generation + 1)) / n_synthetic)


def gaussian_accumulate(generations: int, n_real: int, n_synthetic: int, sigma: float = 1.0,
                        fit_variance: bool = True) -> list[tuple[float, float]]:
    """(E[(mu_t - mu*)^2], E[var_t]) for t = 0..generations under `accumulate`: generation t fits the real set and
    every synthetic set so far, N_t = n + t m samples, the m new ones drawn from N(mu_(t-1), var_(t-1)).

    The pooled set of generation t-1 is exactly what mu_(t-1) and var_(t-1) were fitted on, so (derivation in
    docs/theory.md) the mean moves by a martingale step, mu_t = mu_(t-1) + (m / N_t) (b_t - mu_(t-1)) with b_t the
    new batch's mean, and the pooled sum of squares S_t (var_t = S_t / N_t) grows in expectation as
        E[S_t] = E[S_(t-1)] (1 + (m - 1 + N_(t-1) / N_t) / N_(t-1)),   E[S_0] = (n - 1) sigma^2,
        E[(mu_t - mu*)^2] = sigma^2 / n + sum_(s=1..t) m E[var_(s-1)] / N_s^2.
    Both are exact; both stay bounded (the error below sigma^2/n + sigma^2 m sum 1/N_s^2 < sigma^2 (1/n + pi^2/(6m))),
    in contrast with `replace`. With a known variance (fit_variance=false) var_t = sigma^2 throughout. The same
    mechanism as Gerstgrasser et al. 2024 (arXiv 2404.01413) for linear regression on accumulated data.
    """
    n, m, s2 = int(n_real), int(n_synthetic), float(sigma) ** 2
    S = (n - 1) * s2  # E[S_0]
    err, out = s2 / n, []
    for t in range(generations + 1):
        N = n + t * m
        if t > 0:
            prev_n = N - m
            var_prev = S / prev_n if fit_variance else s2
            err += m * var_prev / N**2
            S *= 1 + (m - 1 + prev_n / N) / prev_n
        out.append((err, S / N if fit_variance else s2))
    return out


def _mixed_terms(n_real: int, n_synthetic: int, n_real_share: int, sigma: float, fresh: bool):
    """(p, q, m, base, c, S) of ``gaussian_mixed``'s recursion: the real and synthetic shares, the real set's own
    error about mu*, the variance of the real share's mean about its centre, and S (S - c: its MLE variance)."""
    n, k, m, s2 = int(n_real), int(n_real_share), int(n_synthetic), float(sigma) ** 2
    p, q = k / (k + m), m / (k + m)
    if fresh:
        return p, q, m, 0.0, s2 / k, s2
    b = k % n
    return p, q, m, s2 / n, ((b / k) ** 2 * s2 * (n - b) / (n * b) if b else 0.0), s2 * (n - 1) / n


def gaussian_mixed(generations: int, n_real: int, n_synthetic: int, n_real_share: int, sigma: float = 1.0,
                   fit_variance: bool = True, fresh: bool = False) -> list[tuple[float, float]]:
    """(E[(mu_t - mu*)^2], E[var_t]) for t = 0..generations when every training set after generation 0 holds
    ``n_real_share`` real samples beside ``n_synthetic`` unfiltered synthetic ones (docs/theory.md).

    ``fresh=False`` (`mix`): the real share is drawn from the fixed real set of ``n_real`` each generation
    (k // n copies of it plus a uniform subsample of k % n); ``fresh=True`` (`fresh`): new samples of the truth.
    With p = k/N, q = m/N (N = k + m), the error D of mu_t about the real share's centre (the real set's mean,
    or mu* when fresh) and V = E[var_t] follow the affine recursion
        D' = p^2 c + q^2 (D + V/m),
        V' = p (S - c) + (q - q^2/m) V + p q (c + D),
    where c is the variance of the real share's mean about that centre and S - c its expected MLE variance.
    """
    p, q, m, base, c, S = _mixed_terms(n_real, n_synthetic, n_real_share, sigma, fresh)
    s2 = float(sigma) ** 2
    D = s2 / n_real if fresh else 0.0  # generation 0 fits the real set: its mean's error about the centre
    V = s2 * (n_real - 1) / n_real if fit_variance else s2
    out = [(base + D, V)]
    for _ in range(generations):
        D, V = (p * p * c + q * q * (D + V / m),
                p * (S - c) + (q - q * q / m) * V + p * q * (c + D) if fit_variance else s2)
        out.append((base + D, V))
    return out


def gaussian_mixed_stationary(n_real: int, n_synthetic: int, n_real_share: int, sigma: float = 1.0,
                              fit_variance: bool = True, fresh: bool = False) -> tuple[float, float]:
    """The fixed point of ``gaussian_mixed``'s recursion: (param error, variance) as t -> infinity."""
    p, q, m, base, c, S = _mixed_terms(n_real, n_synthetic, n_real_share, sigma, fresh)
    s2 = float(sigma) ** 2
    if not fit_variance:
        return base + (p * p * c + q * q * s2 / m) / (1 - q * q), s2
    A = np.array([[1 - q * q, -q * q / m], [-p * q, 1 - q + q * q / m]])
    D, V = np.linalg.solve(A, np.array([p * p * c, p * (S - c) + p * q * c]))
    return float(base + D), float(V)


def toolkit_mse(a: float, b: float, n_candidates: float) -> float:
    """The paper's one-dimensional toolkit (appendix, v2): the mean of N(theta*, 1) estimated from the samples, of
    ``n_candidates`` drawn, that fall in the window [theta* + a, theta* + b]:
        C = (phi(a) - phi(b)) / P,  theta(a, b) = 1 - (b phi(b) - a phi(a)) / P - C^2,  P = Phi(b) - Phi(a),
        MSE = C^2 + theta(a, b) / (n_candidates P).
    It is ``one_round_risk`` at d = 1 with a generator that is exactly theta* (mu -> infinity: no error carried
    from generation 0), centre offset (a + b) / 2, half-width (b - a) / 2 and n_accept = n_candidates P kept
    (docs/theory.md; tests/test_theory.py checks the two agree)."""
    pa, pb = float(_phi(np.float64(a))), float(_phi(np.float64(b)))
    apa = a * pa if np.isfinite(a) else 0.0  # t phi(t) -> 0 at an open end
    bpb = b * pb if np.isfinite(b) else 0.0
    P = float(ndtr(b) - ndtr(a))
    C = (pa - pb) / P
    theta = 1.0 - (bpb - apa) / P - C**2
    return float(C**2 + theta / (n_candidates * P))


# ----- soft curation and the exact density ratio on the Gaussian study (docs/theory.md) ---------------------
def tilt_factor(tau2: float, sigma: float = 1.0) -> float:
    """kappa = tau^2 / (tau^2 + sigma^2): N(mu, sigma^2) tilted by exp(-(y - c)^2 / (2 tau^2)) is
    N(kappa mu + (1 - kappa) c, kappa sigma^2)."""
    return float(tau2 / (tau2 + sigma**2))


def gaussian_tilt(generations: int, n_real: int, n_synthetic: int, tau2: float, bias: float = 0.0,
                  sigma: float = 1.0) -> list[tuple[float, float]]:
    """(E[(mu_t - mu*)^2], E[mu_t - mu*]) for t = 0..generations of the known-variance Gaussian study retrained
    (`verify`) on m = n_synthetic samples of its own fit tilted by the reward exp(-(y - c)^2 / (2 tau^2)), c = mu* +
    bias: `selection=tilt` of the centre verifier, whose score -(y - c)^2 / (2 w^2) at temperature T gives
    tau^2 = T w^2 (Ferbach et al. 2024, arXiv 2407.09499: curation tilts p_t by exp(reward / T)).

    With kappa = tau^2 / (tau^2 + sigma^2), e_t = mu_t - mu* follows e_t = kappa e_(t-1) + (1 - kappa) bias +
    sqrt(kappa sigma^2 / m) z, so, exactly,
        E[e_t] = kappa E[e_(t-1)] + (1 - kappa) bias,
        E[e_t^2] = kappa^2 E[e_(t-1)^2] + 2 kappa (1 - kappa) bias E[e_(t-1)] + (1 - kappa)^2 bias^2 + kappa sigma^2 / m,
    from E[e_0] = 0, E[e_0^2] = sigma^2 / n."""
    k, m, s2, b = tilt_factor(tau2, sigma), int(n_synthetic), float(sigma) ** 2, float(bias)
    e1, e2 = 0.0, s2 / int(n_real)
    out = [(e2, e1)]
    for _ in range(generations):
        e1, e2 = k * e1 + (1 - k) * b, k * k * e2 + 2 * k * (1 - k) * b * e1 + (1 - k) ** 2 * b * b + k * s2 / m
        out.append((e2, e1))
    return out


def gaussian_tilt_stationary(n_synthetic: int, tau2: float, bias: float = 0.0, sigma: float = 1.0) -> float:
    """The fixed point of ``gaussian_tilt``: E[(mu_t - mu*)^2] -> bias^2 + kappa sigma^2 / (m (1 - kappa^2))."""
    k = tilt_factor(tau2, sigma)
    return float(bias**2 + k * sigma**2 / (int(n_synthetic) * (1 - k * k)))


def gaussian_true_ratio(generation: int, n_real: int, n_synthetic: int, sigma: float = 1.0, fit_variance: bool = True,
                        accumulate: bool = False) -> tuple[float, float]:
    """(E[(mu_t - mu*)^2], E[var_t]) when every synthetic set is kept in proportion to the exact p_data / p_model
    (`verifier=oracle_ratio selection=drs`), in the large-pool limit where the kept samples are exact samples of the
    truth (Azadi et al. 2019, arXiv 1810.06758): each generation is then a fit on N fresh truth samples, N = m
    (`verify`) or n + t m (`verify_accumulate`: the real set and every kept set so far), whatever the previous fit."""
    N = int(n_real) + generation * int(n_synthetic) if accumulate or generation == 0 else int(n_synthetic)
    s2 = float(sigma) ** 2
    return s2 / N, (s2 * (N - 1) / N if fit_variance else s2)


def gaussian_accumulate_subsample(generations: int, n_real: int, n_synthetic: int, sigma: float = 1.0,
                                  fit_variance: bool = True) -> list[tuple[float, float]]:
    """(E[(mu_t - mu*)^2], E[var_t]) for t = 0..generations under unfiltered `accumulate_subsample` (Kazdan et al.
    2024): generation t fits a uniform subsample, without replacement, of m samples from the pool of the real set and
    every synthetic set so far (N_t = n + t m), the m new ones drawn from N(mu_(t-1), var_(t-1)).

    Every quantity is linear or quadratic in the samples' errors e = y - mu*, and the subsample is drawn independently
    of their values, so the pool's second moments close exactly (docs/theory.md). Samples of one group (the real set,
    or one generation's synthetic set) are exchangeable; with D_g = E[e_i^2] and C_gh = E[e_i e_j] (i != j) per group:
    a new group s has D_s = M_(s-1) + E[var_(s-1)] (sigma^2 with a known variance), C_ss = M_(s-1), C_sh = X_(s-1),h;
    and for a subsample of m from N with G = the pool's second-moment matrix,
        M = E[ebar^2] = (sum_k G_kk / N + (m - 1) sum_(k != l) G_kl / (N (N - 1))) / m,
        X_h = E[ebar e_j] (j in group h) = sum_k G_kj / N,   E[var] = sum_k G_kk / N - M.
    Generation 0 fits the whole real set: M_0 = X_0,0 = sigma^2 / n, E[var_0] = sigma^2 (n - 1) / n."""
    n, m, s2 = int(n_real), int(n_synthetic), float(sigma) ** 2
    sizes, D = [n], [s2]
    C = [[0.0]]  # C[g][h]: E[e_i e_j] between distinct samples of groups g and h
    M, X, V = s2 / n, [s2 / n], (s2 * (n - 1) / n if fit_variance else s2)
    out = [(M, V)]
    for t in range(1, generations + 1):
        for g in range(t):
            C[g].append(X[g])
        C.append(X[:] + [M])
        sizes.append(m)
        D.append(M + (V if fit_variance else s2))
        N = sum(sizes)
        k = len(sizes)
        diag = sum(sizes[g] * D[g] for g in range(k))
        pairs = sum(sizes[g] * ((sizes[h] - (g == h)) * C[g][h]) for g in range(k) for h in range(k))
        col = [D[h] + sum((sizes[g] - (g == h)) * C[g][h] for g in range(k)) for h in range(k)]
        M = (diag / N + ((m - 1) * pairs / (N * (N - 1)) if m > 1 else 0.0)) / m
        X = [c / N for c in col]
        V = diag / N - M if fit_variance else s2
        out.append((M, V))
    return out


def linear_mix(singular_values: ArrayLike, generation: int, n_synthetic: int, copies: int, sigma: float = 1.0) -> float:
    """E||theta_t - theta*||^2 under unfiltered `mix` on the singular design when the real share is the whole real set
    repeated ``copies`` times (k = copies x n real rows beside n_synthetic rows per direction v_j).

    The normal matrix c X0^T X0 + m sum_j v_j v_j^T = V diag(c mu_j^2 + m) V^T is diagonal in the directions, so each
    coordinate e_j = v_j^T (theta - theta*) follows, with p_j = c mu_j^2 / (c mu_j^2 + m), q_j = 1 - p_j and e_0,j the
    real fit's error (E e_0,j^2 = sigma^2 / mu_j^2, the same real noise every generation),
        e_t,j = p_j e_0,j + q_j e_(t-1),j + sigma sqrt(m) z / (c mu_j^2 + m),
    so A_t = E[e_t e_0] = p E0 + q A_(t-1) and B_t = E[e_t^2] = p^2 E0 + q^2 B_(t-1) + 2 p q A_(t-1) + sigma^2 q^2 / m,
    exact given the real design (docs/theory.md)."""
    mu2 = np.asarray(singular_values, dtype=np.float64) ** 2
    m, c, s2 = float(n_synthetic), float(copies), float(sigma) ** 2
    E0 = s2 / mu2
    p = c * mu2 / (c * mu2 + m)
    q = 1.0 - p
    A, B = E0.copy(), E0.copy()
    for _ in range(generation):
        A, B = p * E0 + q * A, p * p * E0 + q * q * B + 2 * p * q * A + s2 * q * q / m
    return float(B.sum())
