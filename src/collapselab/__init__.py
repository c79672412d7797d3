"""collapselab: iterative retraining of generators on their own (verified) synthetic data."""
import secrets

from omegaconf import OmegaConf

from .config import NON_RESULT_KEYS

__version__ = "0.1.0"

# conf/config.yaml names sweep job folders without these keys: ${collapselab.non_result_keys:}
OmegaConf.register_new_resolver("collapselab.non_result_keys", lambda: list(NON_RESULT_KEYS), replace=True)

# ... and default run / sweep dirs end with this process's own suffix, so jobs started in one second never
# share a folder: ${collapselab.run_id:} (one value per process)
RUN_ID = secrets.token_hex(3)
OmegaConf.register_new_resolver("collapselab.run_id", lambda: RUN_ID, replace=True)
