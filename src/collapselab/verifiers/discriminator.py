"""The paper's real-vs-synthetic discriminator: an MLP trained on real images vs the current generator's samples."""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.mnist import N_CLASSES, N_PIXELS
from ..device import bf16_autocast
from ..training import adam, train_minibatch

log = logging.getLogger(__name__)


class DiscriminatorMLP(nn.Module):
    """The paper's real-vs-synthetic MLP: 784-512-256-128-64-1, LeakyReLU(0.2); outputs a logit.

    Conditional (``n_cond`` = 10): the one-hot label is concatenated to the 784 pixels (the authors'
    NELBO-experiment discriminator), so it judges "is this a real image *of this digit*".
    """

    def __init__(self, n_cond: int = 0) -> None:
        super().__init__()
        dims = [N_PIXELS + n_cond, 512, 256, 128, 64]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(dims[-1], 1))
        self.net = nn.Sequential(*layers)
        self.n_cond = n_cond

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """x [N, 1, 28, 28], y [N] (used when conditional) -> logits [N]."""
        h = x.flatten(1)
        if self.n_cond:
            h = torch.cat([h, F.one_hot(y, self.n_cond).to(h.dtype)], 1)
        return self.net(h).squeeze(1)


class DiscriminatorVerifier:
    """Trained on real vs current samples; ranks candidates by logit and keeps a per-class fraction
    (``selection``: the top, a softmax draw, or in proportion to D/(1-D); sampling.select)."""

    density_ratio = True  # score() is log D/(1-D), an estimate of log p_data / p_model

    def __init__(self, device: torch.device, keep_fraction: float = 0.1, epochs: int = 3, batch_size: int = 256,
                 lr: float = 1e-3, conditional: bool = False, bf16: bool = False, progress: bool = True,
                 fit_size: int = 60000, refit: str = "every_generation", selection: str = "top",
                 temperature: float = 1.0, patience: int | None = None, holdout: float = 0.1,
                 fake_labels: str = "real") -> None:
        self.device, self.keep_fraction = device, keep_fraction
        self.selection, self.temperature = selection, temperature
        self.epochs, self.batch_size, self.lr, self.progress = epochs, batch_size, lr, progress
        self.fit_size, self.refit = fit_size, refit
        # patience: None trains every epoch; N stops once the training loss has not fallen for N epochs (the
        # authors' rule). holdout: the share of real + fake images kept out of training for the reported accuracy
        # (0: train on all of them, no accuracy)
        self.patience, self.holdout, self.fake_labels = patience, holdout, fake_labels
        self.n_cond = N_CLASSES if conditional else 0
        self.bf16 = bf16 and device.type in ("cpu", "cuda")  # bf16 autocast while training; scores stay fp32
        self.net: DiscriminatorMLP | None = None
        self.fit_stats: dict[str, float] = {}

    def fit_due(self) -> bool:
        """Train every generation, or only the first time (refit=once)."""
        return self.net is None or self.refit == "every_generation"

    def fit(self, real: tuple[Tensor, Tensor], fake: tuple[Tensor, Tensor], rng: torch.Generator) -> dict[str, float]:
        """real, fake: (binary images [N, 1, 28, 28], labels [N]); trains a fresh MLP (BCE on logits),
        holding out ``holdout`` of them for the accuracy it reports."""
        self.net = DiscriminatorMLP(self.n_cond).to(self.device)
        x = torch.cat([real[0], fake[0]]).to(self.device)
        y = torch.cat([real[1], fake[1]]).to(self.device)
        t = torch.cat([torch.ones(len(real[0])), torch.zeros(len(fake[0]))]).to(self.device)
        perm = torch.randperm(len(t), generator=rng, device=rng.device).to(self.device)
        n_val = max(1, math.floor(len(t) * self.holdout + 1e-9)) if self.holdout > 0 else 0
        val, tr = perm[:n_val], perm[n_val:]

        def loss_fn(b: Tensor) -> Tensor:
            with bf16_autocast(self.device, self.bf16):
                logit = self.net(x[b], y[b])
            return F.binary_cross_entropy_with_logits(logit.float(), t[b])

        train_minibatch(self.net, loss_fn, tr, optimizer=adam(self.net.parameters(), self.lr, self.device),
                        epochs=self.epochs, batch_size=self.batch_size, rng=rng, patience=self.patience,
                        stop_on="val" if self.patience is None else "train", desc="discriminator",
                        progress=self.progress)
        self.net.eval()
        if n_val:
            acc = float(((self.logits(x[val], y[val]) > 0).float() == t[val]).float().mean())
            log.info("discriminator: held-out real-vs-synthetic accuracy %.3f", acc)
        else:
            acc = None
        self.fit_stats = {"discriminator_accuracy": acc}
        return self.fit_stats

    @torch.no_grad()
    def logits(self, x: Tensor, y: Tensor, batch: int = 8192) -> Tensor:
        """Logits [N] for images x [N, 1, 28, 28] with labels y [N]."""
        return torch.cat([self.net(x[i:i + batch].to(self.device), y[i:i + batch].to(self.device))
                          for i in range(0, len(x), batch)])

    def score(self, x: Tensor, y: Tensor) -> Tensor:
        """The logit (not the sigmoid: sigmoids saturate and ties would break the ranking)."""
        return self.logits(x, y)

    def state_dict(self) -> dict | None:
        return None if self.net is None else {k: v.cpu() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict | None) -> None:
        if state is not None:
            self.net = DiscriminatorMLP(self.n_cond).to(self.device)
            self.net.load_state_dict(state)
            self.net.eval()
