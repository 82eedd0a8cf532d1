"""The ablation study of the paper's Table 2, with classical baselines, as one call."""

from .config import AblationConfig, ablation_from_dict, load_ablation_config
from .study import run_ablation

__all__ = ["run_ablation", "AblationConfig", "ablation_from_dict", "load_ablation_config"]
