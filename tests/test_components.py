"""components.build: Hydra instantiate with call-site kwargs, offered parts and the contract check."""
import pytest
import torch

from collapselab.components import build
from collapselab.errors import ConfigError


def test_build_passes_call_site_kwargs_and_refuses_clashes():
    node = {"_target_": "collapselab.studies.gaussian.GaussianGenerator", "name": "gaussian", "fit_variance": False}
    gen = build(node, "generator", replicates=3, noise_std=2.0, device=torch.device("cpu"))
    assert gen.var.tolist() == [4.0] * 3
    with pytest.raises(ConfigError, match=r"generator\.replicates is set by the study at run time"):
        build({**node, "replicates": 5}, "generator", replicates=3, noise_std=2.0, device=torch.device("cpu"))


# ----- the one minibatch trainer ---------------------------------------------------------------------------
