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


def _yaml_parts():
    """(file, node) of every conf/{generator,verifier,verifier/truth,policy} YAML with a _target_ of its own."""
    from omegaconf import OmegaConf

    from .conftest import CONF, options

    for group in ("generator", "verifier", "verifier/truth", "policy"):
        for name in options(group):
            node = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{name}.yaml"))
            node = node.get(group, node) if group == "generator" else node
            if isinstance(node.get("_target_"), str):
                yield f"{group}/{name}.yaml", node


@pytest.mark.parametrize("path, node", list(_yaml_parts()), ids=lambda v: v if isinstance(v, str) else "")
def test_a_class_and_its_yaml_agree_on_every_default(path, node):
    """One home for each default: where a YAML sets a key the class also defaults, the two values are equal."""
    import inspect

    from collapselab.components import locate

    params = inspect.signature(locate(node["_target_"])).parameters
    differ = {k: (v, params[k].default) for k, v in node.items()  # `name` is the label each YAML sets
              if k != "name" and k in params and params[k].default is not inspect.Parameter.empty and params[k].default != v}
    assert not differ, f"{path}: YAML value vs class default {differ}"
