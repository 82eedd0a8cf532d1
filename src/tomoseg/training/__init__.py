"""Training and fine-tuning: ``train(config)`` and its configuration."""

from .config import TrainConfig, config_from_dict, load_config
from .loop import train

__all__ = ["train", "TrainConfig", "config_from_dict", "load_config"]
