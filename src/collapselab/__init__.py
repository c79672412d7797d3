"""collapselab: iterative retraining of generators on their own (verified) synthetic data."""
from omegaconf import OmegaConf

from .config import NON_RESULT_KEYS

__version__ = "0.1.0"

# conf/config.yaml names sweep job folders without these keys: ${collapselab.non_result_keys:}
OmegaConf.register_new_resolver("collapselab.non_result_keys", lambda: list(NON_RESULT_KEYS), replace=True)
