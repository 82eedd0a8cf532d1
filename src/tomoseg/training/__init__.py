"""Training and fine-tuning: ``train(config)`` and its configuration."""

from .config import TrainConfig, config_from_dict, load_config
from .loop import prepare_data, train

__all__ = ["train", "prepare_data", "TrainConfig", "config_from_dict", "load_config"]
