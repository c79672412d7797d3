"""The generators on tiny data, the centre verifier, the builder and the one minibatch trainer."""
import math

import pytest
import torch

from collapselab.batch import Batch
from collapselab.errors import ConfigError
from collapselab.generators.linear import LinearGenerator
from collapselab.generators.vae import VAEGenerator
from collapselab.interfaces import Generator
from collapselab.studies.gaussian import GaussianGenerator


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_linear_generator_recovers_theta_and_proposes_shapes():
    d, R = 3, 4
    dirs = torch.eye(d, dtype=torch.float64)
    gen = LinearGenerator(dirs, 0.0, R, "singular")
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    x = torch.randn(R, 10, d, generator=g(), dtype=torch.float64)
    gen.fit(Batch(x, x @ theta))
    assert torch.allclose(gen.theta, theta.expand(R, d))
    x, y = gen.propose(5, g())
    assert x.shape == (1, d, 1, d) and y.shape == (R, d, 5) and torch.allclose(y[0, 1], torch.full((5,), -2.0, dtype=torch.float64))
    assert isinstance(gen, Generator)
    with pytest.raises(ConfigError, match=r"generator\.design='wrong'"):
        LinearGenerator(dirs, 1.0, R, "wrong")


def test_gaussian_generator_fits_mean_and_mle_variance():
    gen = GaussianGenerator(2, 1.0, torch.device("cpu"))
    y = torch.tensor([[1.0, 3.0], [0.0, 0.0]], dtype=torch.float64)
    gen.fit(Batch(torch.ones(2, 2, 1, dtype=torch.float64), y))
    assert gen.mu.tolist() == [2.0, 0.0] and gen.var.tolist() == [1.0, 0.0]  # MLE: divides by n
    known = GaussianGenerator(2, 3.0, torch.device("cpu"), fit_variance=False)
    known.fit(Batch(torch.ones(2, 2, 1, dtype=torch.float64), y))
    assert known.var.tolist() == [9.0, 9.0]
    x, s = known.propose(1000, g())
    assert x.shape == (1, 1, 1, 1) and s.shape == (2, 1, 1000) and abs(float(s[0].std()) - 3.0) < 0.3


def test_vae_generator_checks_its_keys_and_fits_tiny_data():
    dev = torch.device("cpu")
    with pytest.raises(ConfigError, match=r"generator\.lr=0\.0 is invalid"):
        VAEGenerator(dev, lr=0.0)
    with pytest.raises(ConfigError, match=r"generator\.bf16='sometimes' is invalid"):
        VAEGenerator(dev, bf16="sometimes")
    gen = VAEGenerator(dev, arch="mlp", latent_dim=2, epochs=1, batch_size=8, progress=False, bf16=False,
                       lr_schedule="constant")
    x = (torch.rand(40, 1, 28, 28, generator=g()) > 0.5).float()
    stats = gen.fit(Batch(x, torch.arange(40) % 10), g())
    assert math.isfinite(stats["train_nelbo"]) and stats["epochs"] == 1
    px, py = gen.propose(3, g())
    assert px.shape == (1, 10, 3, 1, 28, 28) and py[0, 4].tolist() == [4, 4, 4]
    assert set(px.unique().tolist()) <= {0.0, 1.0}


# ----- the CVAE's sampling and memory layouts ---------------------------------------------------------------
def test_vae_bernoulli_draw_has_the_right_rate_and_is_seeded():
    from collapselab.generators.vae import bernoulli
    p = torch.linspace(0, 1, 11).repeat(20000, 1)
    a = bernoulli(p, torch.Generator().manual_seed(3))
    b = bernoulli(p, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == p.dtype and set(a.unique().tolist()) <= {0.0, 1.0}
    assert (a[:, 0] == 0).all() and (a[:, -1] == 1).all()  # p = 0 never fires, p = 1 always does
    assert torch.allclose(a.mean(0), p[0], atol=0.015)  # 20,000 draws: 4 standard errors at p = 0.5


def test_vae_decoder_gives_the_same_images_in_either_memory_layout():
    """Sampling runs the decoder on channels-last activations on a CPU: the same function as training's layout."""
    g = VAEGenerator(torch.device("cpu"), bf16=False, progress=False)
    z, y = torch.randn(64, 20), torch.arange(64) % 10
    with torch.no_grad():
        inference = g.model.decoder(z, g.model.cond(y))
    with torch.enable_grad():
        training = g.model.decoder(z, g.model.cond(y))
    assert torch.allclose(inference, training.detach(), atol=1e-5)


def test_vae_cache_sized_chunks_draw_and_score_what_one_pass_does(monkeypatch):
    """On a CPU the decoder and the NELBO pass run in sub-batches; the random draws stay one per block, so the
    samples, mean images and NELBOs match one pass over the block (and the stream is left in the same state)."""
    import collapselab.generators.vae as V
    g = VAEGenerator(torch.device("cpu"), bf16=False, progress=False)
    y = torch.arange(230) % 10
    x = (torch.rand(230, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()

    def run(chunk: int):
        monkeypatch.setattr(V, "CPU_DECODE_CHUNK", chunk)
        monkeypatch.setattr(V, "CPU_NELBO_CHUNK", chunk)
        r = torch.Generator().manual_seed(5)
        return (g.decode(y, r, batch=100), g.decode_mean(y, r, batch=100), g.batch_nelbo(x, y, r, batch=100),
                torch.rand(3, generator=r))

    one, chunked = run(10_000), run(7)
    assert torch.equal(one[0], chunked[0]) and torch.equal(one[3], chunked[3])
    assert torch.allclose(one[1], chunked[1], atol=1e-6) and torch.allclose(one[2], chunked[2], rtol=1e-6)
    assert one[0].shape == (230, 1, 28, 28) and one[2].shape == (230,)


def test_predict_logits_cache_sized_batches_match_one_pass():
    from collapselab.nets import SmallCNN, inference_batch, predict_logits
    assert inference_batch(torch.device("cpu")) <= 512 < inference_batch(torch.device("cuda"))
    net = SmallCNN().to(memory_format=torch.channels_last)
    x = (torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    small, whole = predict_logits(net, x, batch=64), predict_logits(net, x, batch=300)
    assert small[0].shape == (300, 10) and torch.allclose(small[0], whole[0], atol=1e-5)
