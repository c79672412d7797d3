"""Verifiers for MNIST: a classifier, the judge (oracle / noisy oracle), and the real-vs-synthetic
discriminator (``verifiers.discriminator``), each built from its YAML by the functions at the end.

Two modes: a *threshold* verifier gives a verdict per candidate (the loop draws until enough are
accepted); a *ranking* verifier scores a pool and keeps the per-class top ``keep_fraction``.
"""
from __future__ import annotations

import copy
import logging
import math

import torch
from torch import Tensor

from ..config import check_bool, check_choice, check_int, check_number
from ..data.mnist import MNISTData
from ..device import resolve_bf16
from ..errors import ConfigError
from ..nets import JUDGE, NetCache, NetSpec, SmallCNN, classifier_spec, predict, predict_logits
from .base import apply_reliability, ranking_keys
from .discriminator import DiscriminatorVerifier

log = logging.getLogger(__name__)


def label_scores(net: SmallCNN, x: Tensor, y: Tensor, conditional: bool) -> Tensor:
    """p(y | x) under ``net`` for the conditioning label, or max_c p(c | x) when unconditional; [N]."""
    probs, _ = predict(net, x)
    if conditional:
        return probs.gather(1, y.to(probs.device).view(-1, 1)).squeeze(1)
    return probs.max(1).values


def log_odds(logits: Tensor, y: Tensor) -> Tensor:
    """log p(y|x) / (1 - p(y|x)) from logits [N, C] (fp32) and labels y [N]: monotone in p, never saturates."""
    mine = logits.gather(1, y.view(-1, 1)).squeeze(1)
    rest = logits.scatter(1, y.view(-1, 1), float("-inf")).logsumexp(1)
    return mine - rest


class ClassifierVerifier:
    """Scores the log-odds of the conditioning label; ranks by it (``keep_fraction``) or accepts iff
    p(label | x) >= ``threshold``.

    Log-odds, not probabilities: a confident classifier gives many candidates p = 1.0 in fp32 (logit
    margins above ~17), and a ranking of ties would keep an arbitrary subset of them. The network comes
    from the net cache on first use (``prepare``), so building the verifier trains nothing.
    """

    density_ratio = False  # the score is a label's log-odds, not log p_data / p_model

    def __init__(self, nets: NetCache, spec: NetSpec, conditional: bool, threshold: float = 0.9,
                 keep_fraction: float | None = None, bf16: bool = False, selection: str = "top",
                 temperature: float = 1.0) -> None:
        self.nets, self.spec, self.conditional, self.bf16 = nets, spec, conditional, bf16
        self.threshold, self.keep_fraction = threshold, keep_fraction
        self.selection, self.temperature = selection, temperature  # how a ranked pool is kept (sampling.select)
        self.net: SmallCNN | None = None
        self.test_accuracy: float | None = None

    def prepare(self) -> None:
        """Fetch (or train and cache) the network; its own channels-last copy for bf16 scoring."""
        if self.net is None:
            net, self.test_accuracy = self.nets.get(self.spec)
            self.net = copy.deepcopy(net).to(memory_format=torch.channels_last) if self.bf16 else net

    def state_dict(self) -> None:
        return None  # the network is cached under <data.root>/nets and rebuilt from the config

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """x [N, 1, 28, 28], y [N] -> log-odds of y (of the most likely class when unconditional), fp32 [N]."""
        self.prepare()
        logits, _ = predict_logits(self.net, x, bf16=self.bf16)
        target = y.to(logits.device) if self.conditional else logits.argmax(1)
        return log_odds(logits, target)

    def __call__(self, x: Tensor, y: Tensor, rng: torch.Generator) -> Tensor:
        """x [N, 1, 28, 28], y [N] -> bool [N]: p >= threshold, i.e. log-odds >= log(t / (1 - t))."""
        t = self.threshold
        if t <= 0.0 or t >= 1.0:
            return torch.full((len(y),), t <= 0.0, dtype=torch.bool, device=y.device)
        return self.score(x, y) >= math.log(t / (1.0 - t))


class JudgeVerifier:
    """The oracle: the judge network accepts iff p_judge(label | x) >= threshold; rho adds coin flips. With
    ``keep_fraction`` it ranks by the judge's log-odds of the label instead."""

    density_ratio = False  # the score is a label's log-odds

    def __init__(self, nets: NetCache, conditional: bool, threshold: float = 0.5, reliability: float = 1.0,
                 keep_fraction: float | None = None, selection: str = "top", temperature: float = 1.0) -> None:
        self.nets, self.conditional = nets, conditional
        self.threshold, self.reliability = threshold, reliability
        self.keep_fraction, self.selection, self.temperature = keep_fraction, selection, temperature

    def prepare(self) -> None:
        self.nets.get(JUDGE)

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """x [N, 1, 28, 28], y [N] -> the judge's log-odds of y (of its most likely class when unconditional), [N]."""
        logits, _ = predict_logits(self.nets.get(JUDGE)[0], x)
        target = y.to(logits.device) if self.conditional else logits.argmax(1)
        return log_odds(logits, target)

    def __call__(self, x: Tensor, y: Tensor, rng: torch.Generator) -> Tensor:
        """x [N, 1, 28, 28], y [N] -> bool [N]; the coins of rho < 1 come from ``rng`` (the verify stream)."""
        own = label_scores(self.nets.get(JUDGE)[0], x, y, self.conditional) >= self.threshold
        return apply_reliability(own, self.reliability, rng)


# ----- built from conf/verifier/*.yaml (``_target_``) with the parts their signatures name ----------------
def classifier(nets: NetCache, data: MNISTData, conditional_model: bool, device: torch.device,
               threshold: float = 0.9, keep_fraction: float | None = 0.1, train_size: int | None = None,
               bf16: bool | str = "auto", selection: str = "top", temperature: float = 1.0) -> ClassifierVerifier:
    """A classifier trained (and cached) on ``train_size`` real images, scoring the label's log-odds."""
    threshold = check_number("verifier.threshold", threshold, 0.0, 1.0)
    kf = ranking_keys(keep_fraction, selection, temperature, who="verifier=classifier")
    if kf is not None and threshold != 0.9:
        log.warning("verifier.threshold=%g has no effect while verifier.keep_fraction=%g ranks the candidates: set "
                    "verifier.keep_fraction=null to accept by threshold", threshold, kf)
    n = data.check_train_size("verifier.train_size", train_size)
    return ClassifierVerifier(nets, classifier_spec(n), conditional_model, threshold=threshold, keep_fraction=kf,
                              bf16=resolve_bf16(bf16, device, key="verifier.bf16"), selection=selection,
                              temperature=temperature)


def discriminator(data: MNISTData, device: torch.device, conditional_model: bool, progress: bool = True,
                  keep_fraction: float = 0.1, train_size: int | None = None, conditional: bool | str = "auto",
                  refit: str = "every_generation", epochs: int = 3, bf16: bool | str = "auto", selection: str = "drs",
                  temperature: float = 1.0, batch_size: int = 256, patience: int | None = None,
                  holdout: float = 0.1, fake_labels: str = "real") -> DiscriminatorVerifier:
    """The paper's real-vs-synthetic MLP, per class; trained on real vs current samples every generation (or once).
    ``conditional="auto"``: it sees the label when the generator is conditional. The authors' training rule is
    ``epochs=80 patience=5 batch_size=128 holdout=0 fake_labels=balanced`` (experiment=authors_mnist)."""
    n = data.check_train_size("verifier.train_size", train_size)
    batch_size = check_int("verifier.batch_size", batch_size, 1)
    if patience is not None:
        check_int("verifier.patience", patience, 1, hint="null trains every epoch")
    holdout = check_number("verifier.holdout", holdout, 0.0, 0.5)
    fake_labels = check_choice("verifier.fake_labels", fake_labels, ("real", "balanced"))
    refit = check_choice("verifier.refit", refit, ("every_generation", "once"))
    if keep_fraction is None:
        raise ConfigError("verifier=discriminator ranks candidates: set verifier.keep_fraction in (0, 1]")
    kf = ranking_keys(keep_fraction, selection, temperature, who="verifier=discriminator", density_ratio=True)
    if conditional == "auto":
        conditional = conditional_model
    if check_bool("verifier.conditional", conditional) and not conditional_model:
        raise ConfigError("verifier.conditional=true needs labelled samples: it does not fit "
                          "generator.conditional=false (use verifier.conditional=false)")
    return DiscriminatorVerifier(device, keep_fraction=kf, epochs=check_int("verifier.epochs", epochs, 1),
                                 conditional=conditional, bf16=resolve_bf16(bf16, device, key="verifier.bf16"),
                                 progress=progress, fit_size=n, refit=refit, selection=selection,
                                 temperature=temperature, batch_size=batch_size, patience=patience, holdout=holdout,
                                 fake_labels=fake_labels)


def _judge(nets, conditional_model, threshold, reliability, keep_fraction, selection, temperature, who) -> JudgeVerifier:
    t = check_number("verifier.threshold", 0.5 if threshold is None else threshold, 0.0, 1.0)
    rho = check_number("verifier.reliability", reliability, 0.0, 1.0)
    kf = ranking_keys(keep_fraction, selection, temperature, rho, who=who)
    return JudgeVerifier(nets, conditional_model, threshold=t, reliability=rho, keep_fraction=kf, selection=selection,
                         temperature=temperature)


def noisy_oracle(nets: NetCache, conditional_model: bool, threshold: float | None = None, reliability: float = 1.0,
                 keep_fraction: float | None = None, selection: str = "top", temperature: float = 1.0) -> JudgeVerifier:
    """The judge network (a stronger classifier standing in for the truth) with reliability rho; with
    ``keep_fraction`` it ranks by the judge's log-odds (conf/verifier/truth/noisy_oracle_mnist.yaml)."""
    return _judge(nets, conditional_model, threshold, reliability, keep_fraction, selection, temperature,
                  "verifier=noisy_oracle")


def oracle(nets: NetCache, conditional_model: bool, threshold: float | None = None, reliability: float = 1.0,
           keep_fraction: float | None = None, selection: str = "top", temperature: float = 1.0) -> JudgeVerifier:
    """The judge network's verdict, or its ranking with ``keep_fraction`` (conf/verifier/truth/oracle_mnist.yaml)."""
    return _judge(nets, conditional_model, threshold, reliability, keep_fraction, selection, temperature,
                  "verifier=oracle")
