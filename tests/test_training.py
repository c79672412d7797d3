"""The trainer shared by the CVAE and the networks: seeded, fused Adam on CPU, a one-line fix on NaN."""
import math

import pytest
import torch

from collapselab.errors import RunError


def g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)

def test_trainer_fits_is_seeded_and_names_the_fix_on_nan():
    from collapselab.training import train_minibatch

    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    y = 3 * x

    def fit(seed, epochs=20, val=None, patience=None):
        torch.manual_seed(0)
        net = torch.nn.Linear(1, 1)
        out = train_minibatch(net, lambda i: (net(x[i]) - y[i]).pow(2).mean(), torch.arange(64),
                              optimizer=torch.optim.Adam(net.parameters(), lr=0.1), epochs=epochs, batch_size=8,
                              rng=g(seed), val_fn=val and (lambda: val(net)), patience=patience, progress=False)
        return net, out

    a, out = fit(1)
    assert out.epochs == 20 and out.train_loss < 0.05 and out.best_val == math.inf
    b, _ = fit(1)
    c, _ = fit(2)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    # held-out value that only gets worse after the first epoch: stop after `patience`, keep the first epoch
    calls = []
    net, out = fit(1, val=lambda n: calls.append(1) or float(len(calls)), patience=2)
    assert out.epochs == 3 and out.best_val == 1.0
    net = torch.nn.Linear(1, 1)
    with pytest.raises(RunError, match=r"the toy loss became nan at epoch 1; lower the rate"):
        train_minibatch(net, lambda i: net(x[i]).sum() * float("nan"), torch.arange(64),
                        optimizer=torch.optim.SGD(net.parameters(), lr=0.1), epochs=1, batch_size=8, rng=g(),
                        nan_hint="lower the rate", desc="toy", progress=False)


def test_trainer_adam_is_fused_on_cpu():
    from collapselab.training import adam
    opt = adam([torch.nn.Parameter(torch.zeros(3))], 1e-3, torch.device("cpu"))
    assert opt.defaults["fused"] is True
