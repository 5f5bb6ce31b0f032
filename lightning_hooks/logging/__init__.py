"""MMEngine-style logging: LogProcessor (lines and tags) and the writers LoggerHook uses."""

from .backends import BACKEND_TYPES, DEFAULT_VIS_BACKENDS, build_writers, check_vis_backends
from .lightning_writer import LightningLoggersWriter
from .local_writer import LocalJsonWriter
from .log_processor import LogProcessor, build_log_processor
from .tensorboard_writer import TensorboardWriter
from .wandb_writer import WandbWriter

__all__ = [
    "BACKEND_TYPES",
    "DEFAULT_VIS_BACKENDS",
    "LightningLoggersWriter",
    "LocalJsonWriter",
    "LogProcessor",
    "TensorboardWriter",
    "WandbWriter",
    "build_log_processor",
    "build_writers",
    "check_vis_backends",
]
