"""(C)VAE on binary MNIST: the paper's conv architecture (or an MLP), early stopping on a held-out split."""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..batch import Batch
from ..config import check_bool, check_choice, check_int, check_number
from ..data.mnist import IMAGE_SHAPE, N_CLASSES, N_PIXELS
from ..device import bf16_autocast, native_bf16, resolve_bf16
from ..training import adam, train_minibatch

log = logging.getLogger(__name__)


class ConvEncoder(nn.Module):
    """Conv(1->32,k4,s2,p1)+GELU, Conv(32->64,k4,s2,p1)+GELU, flatten, [+ one-hot], Linear -> (mu, logvar)."""

    def __init__(self, latent_dim: int, n_cond: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.GELU(), nn.Conv2d(32, 64, 4, 2, 1), nn.GELU(),
                                  nn.Flatten())
        self.head = nn.Linear(64 * 7 * 7 + n_cond, 2 * latent_dim)

    def forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        h = self.conv(x)
        return self.head(h if c is None else torch.cat([h, c], 1))


class ConvDecoder(nn.Module):
    """[z + one-hot] -> Linear -> 64x7x7 -> ConvT(64->32,k4,s2,p1)+GELU -> ConvT(32->1,k4,s2,p1): logits."""

    def __init__(self, latent_dim: int, n_cond: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(latent_dim + n_cond, 64 * 7 * 7), nn.GELU())
        self.deconv = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.GELU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))

    def forward(self, z: Tensor, c: Tensor | None) -> Tensor:
        h = self.fc(z if c is None else torch.cat([z, c], 1)).view(-1, 64, 7, 7)
        if h.device.type == "cpu" and not torch.is_grad_enabled():
            # sampling and held-out passes on a CPU: oneDNN's channels-last transposed convolutions are about
            # 1.4x faster at sampling batch sizes (not in training, where they are slower at batch 128)
            h = h.contiguous(memory_format=torch.channels_last)
        return self.deconv(h)


class MLPEncoder(nn.Module):
    def __init__(self, latent_dim: int, n_cond: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N_PIXELS + n_cond, 512), nn.GELU(), nn.Linear(512, 256), nn.GELU(),
                                 nn.Linear(256, 2 * latent_dim))

    def forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        h = x.flatten(1)
        return self.net(h if c is None else torch.cat([h, c], 1))


class MLPDecoder(nn.Module):
    def __init__(self, latent_dim: int, n_cond: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim + n_cond, 256), nn.GELU(), nn.Linear(256, 512), nn.GELU(),
                                 nn.Linear(512, N_PIXELS))

    def forward(self, z: Tensor, c: Tensor | None) -> Tensor:
        return self.net(z if c is None else torch.cat([z, c], 1)).view(-1, *IMAGE_SHAPE)


# On a CPU the decoder and the NELBO pass run in sub-batches whose activations stay in the cache (1.8-2x faster
# on 2 cores than one pass over a block of 5000 or 2000 images); the random draws stay one per block, so every
# sample and every NELBO is the same as in one pass
CPU_DECODE_CHUNK, CPU_NELBO_CHUNK = 1000, 500


def _chunks(n: int, device: torch.device, cpu_chunk: int) -> list[slice]:
    """Slices covering range(n): ``cpu_chunk`` long on a CPU, one slice elsewhere."""
    step = cpu_chunk if device.type == "cpu" else max(n, 1)
    return [slice(i, i + step) for i in range(0, n, step)]


def bernoulli(p: Tensor, rng: torch.Generator) -> Tensor:
    """Pixels ~ Bernoulli(p) as 0/1 floats: [u < p] for u ~ U[0, 1) from ``rng`` (2-3x faster on a CPU than
    torch.bernoulli, the same distribution)."""
    return (torch.rand(p.shape, generator=rng, device=p.device, dtype=p.dtype) < p).to(p.dtype)


ARCHS = {"conv": (ConvEncoder, ConvDecoder), "mlp": (MLPEncoder, MLPDecoder)}


class VAE(nn.Module):
    """Bernoulli-likelihood VAE; conditional when ``conditional`` (one-hot label into encoder and decoder)."""

    def __init__(self, arch: str = "conv", latent_dim: int = 20, conditional: bool = True) -> None:
        super().__init__()
        n_cond = N_CLASSES if conditional else 0
        enc, dec = ARCHS[arch]
        self.encoder, self.decoder = enc(latent_dim, n_cond), dec(latent_dim, n_cond)
        self.latent_dim, self.conditional = latent_dim, conditional

    def cond(self, y: Tensor) -> Tensor | None:
        return F.one_hot(y, N_CLASSES).float() if self.conditional else None

    def nelbo(self, x: Tensor, y: Tensor, rng: torch.Generator | None, eps: Tensor | None = None) -> Tensor:
        """Per-sample negative ELBO [N] (nats): summed Bernoulli BCE + KL, one posterior sample (its noise
        ``eps`` [N, latent_dim] drawn from ``rng`` unless given)."""
        c = self.cond(y)
        # the latent statistics and the loss stay fp32 under bf16 autocast (only the layers run in bf16)
        mu, logvar = self.encoder(x, c).float().chunk(2, dim=1)
        if eps is None:
            eps = torch.randn(mu.shape, generator=rng, device=mu.device, dtype=mu.dtype)
        z = mu + eps * (0.5 * logvar).exp()
        logits = self.decoder(z, c)
        rec = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        return rec + kl


class VAEGenerator:
    """fit / sample / propose for the (C)VAE; a fresh network every generation."""

    def __init__(self, device: torch.device, arch: str = "conv", conditional: bool = True, latent_dim: int = 20,
                 epochs: int = 15, batch_size: int = 128, lr: float = 3e-3, patience: int = 10,
                 val_fraction: float = 0.1, bf16: bool | str = "auto", progress: bool = True,
                 sampling: str = "bernoulli", lr_schedule: str = "onecycle", min_steps: int = 1000,
                 early_stopping: str = "heldout") -> None:
        """Keyword arguments are conf/generator/vae.yaml's keys, with its defaults (checked here, each error naming
        its key; tests/test_components.py holds the two equal); ``device`` and ``progress`` come from the study."""
        check_choice("generator.arch", arch, ("conv", "mlp"))
        for key, v, lo in (("latent_dim", latent_dim, 1), ("epochs", epochs, 1), ("batch_size", batch_size, 1),
                           ("patience", patience, 1), ("min_steps", min_steps, 0)):
            check_int(f"generator.{key}", v, lo)
        check_number("generator.lr", lr, 0.0, lo_open=True)
        check_number("generator.val_fraction", val_fraction, 0.0, 0.5)
        check_choice("generator.sampling", sampling, ("bernoulli", "threshold"))
        check_choice("generator.lr_schedule", lr_schedule, ("constant", "onecycle"))
        check_choice("generator.early_stopping", early_stopping, ("heldout", "train"))
        check_bool("generator.conditional", conditional)
        if bf16 is True and not native_bf16(device):
            log.warning("generator.bf16=true on a %s without native bf16: it runs emulated (slow); "
                        "generator.bf16=auto turns it on only where it is fast", device.type)
        bf16 = resolve_bf16(bf16, device)
        self.device = device
        self.model = VAE(arch, latent_dim, conditional).to(device)
        self.conditional = conditional
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.patience, self.val_fraction = patience, val_fraction
        # heldout: the best epoch on a held-out val_fraction of the training set is kept; train (the authors'
        # rule): every image is trained on, and training stops once the training loss has not fallen for
        # `patience` epochs (the last epoch's weights are kept)
        self.early_stopping = early_stopping
        # constant: Adam at lr, up to `epochs` (the paper's recipe); onecycle: warm up to lr and anneal over
        # max(epochs, enough epochs for min_steps optimizer steps), which converges in far fewer epochs
        self.lr_schedule, self.min_steps = lr_schedule, min_steps
        self.amp = bool(bf16) and device.type in ("cpu", "cuda")  # bf16 autocast for training and sampling
        self.progress = progress
        self.sampling = sampling  # bernoulli: pixel ~ Bernoulli(p); threshold: pixel = [p >= 0.5]

    def _autocast(self, enabled: bool | None = None):
        return bf16_autocast(self.device, self.amp if enabled is None else enabled)

    @torch.no_grad()
    def batch_nelbo(self, x: Tensor, y: Tensor, rng: torch.Generator | None, batch: int = 2000,
                    bf16: bool = False) -> Tensor:
        """Per-sample NELBO [N] in eval mode, in large batches (fp32 unless ``bf16``: metrics stay fp32)."""
        self.model.eval()
        out = []
        for i in range(0, len(y), batch):
            xb, yb = x[i:i + batch].to(self.device), y[i:i + batch].to(self.device)
            eps = torch.randn(len(yb), self.model.latent_dim, generator=rng, device=self.device)
            with self._autocast(bf16 and self.amp):
                out += [self.model.nelbo(xb[s], yb[s], rng, eps[s]).float()
                        for s in _chunks(len(yb), self.device, CPU_NELBO_CHUNK)]
        return torch.cat(out)

    def fit(self, train: Batch, rng: torch.Generator) -> dict[str, float]:
        """Adam on the training set; stop when the held-out NELBO (``early_stopping=heldout``) or the training
        NELBO (``train``) has not improved for ``patience`` epochs."""
        x, y = train.x.to(self.device), train.y.to(self.device)
        n = len(y)
        perm = torch.randperm(n, generator=rng, device=rng.device).to(self.device)
        on_train = self.early_stopping == "train"
        n_val = max(1, int(round(self.val_fraction * n))) if n >= 20 and not on_train else 0
        val_idx, tr_idx = perm[:n_val], perm[n_val:]
        opt = adam(self.model.parameters(), self.lr, self.device)
        epochs, sched = self.epochs, None
        if self.lr_schedule == "onecycle":
            per_epoch = max(1, math.ceil((n - n_val) / self.batch_size))
            epochs = max(epochs, math.ceil(self.min_steps / per_epoch))
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=epochs * per_epoch,
                                                        pct_start=0.15)

        def loss_fn(idx: Tensor) -> Tensor:
            with self._autocast():
                return self.model.nelbo(x[idx], y[idx], rng).mean()

        def val_fn() -> float:
            return float(self.batch_nelbo(x[val_idx], y[val_idx], rng, bf16=True).mean())

        out = train_minibatch(self.model, loss_fn, tr_idx, optimizer=opt, epochs=epochs, batch_size=self.batch_size,
                              rng=rng, scheduler=sched, val_fn=val_fn if n_val else None, patience=self.patience,
                              stop_on="train" if on_train else "val",
                              nan_hint=f"lower generator.lr (now {self.lr}) or check the training data",
                              desc="VAE", progress=self.progress)
        return {"train_nelbo": out.train_loss, "val_nelbo": None if on_train else out.best_val, "epochs": out.epochs}

    def _mean_batch(self, y: Tensor, rng: torch.Generator) -> Tensor:
        """Decoder probabilities [n, 1, 28, 28] (fp32) for labels y [n] and z ~ N(0, I) drawn from ``rng``."""
        z = torch.randn(len(y), self.model.latent_dim, generator=rng, device=self.device)
        c = self.model.cond(y)
        out = []
        with self._autocast():
            for s in _chunks(len(y), self.device, CPU_DECODE_CHUNK):
                out.append(torch.sigmoid(self.model.decoder(z[s], None if c is None else c[s]).float()))
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, y: Tensor, rng: torch.Generator, batch: int = 5000) -> Tensor:
        """Binary images [N, 1, 28, 28] for labels y [N]: Bernoulli draws from the decoder, or its thresholded mean."""
        self.model.eval()
        out = []
        for i in range(0, len(y), batch):
            p = self._mean_batch(y[i:i + batch].to(self.device), rng)
            out.append(bernoulli(p, rng) if self.sampling == "bernoulli" else (p >= 0.5).float())
        return torch.cat(out)

    @torch.no_grad()
    def decode_mean(self, y: Tensor, rng: torch.Generator, batch: int = 5000) -> Tensor:
        """The decoder's mean images in [0, 1], [N, 1, 28, 28], z ~ N(0, I): the paper's images for FID."""
        self.model.eval()
        return torch.cat([self._mean_batch(y[i:i + batch].to(self.device), rng) for i in range(0, len(y), batch)])

    def sample(self, n: int, rng: torch.Generator) -> Batch:
        """n class-balanced samples (labels 0..9 in turn)."""
        y = torch.arange(n, device=self.device) % N_CLASSES
        return Batch(self.decode(y, rng), y)

    def propose(self, m: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """m candidates per class: x [1, 10, m, 1, 28, 28], y [1, 10, m]."""
        y = torch.arange(N_CLASSES, device=self.device).repeat_interleave(m)
        x = self.decode(y, rng)
        return x.view(1, N_CLASSES, m, *IMAGE_SHAPE), y.view(1, N_CLASSES, m)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
