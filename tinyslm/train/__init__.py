"""Training: optimizer, compiled step, loop, checkpoints and metrics."""

from tinyslm.train.checkpoint import Checkpointer, Run, load_run, save_run
from tinyslm.train.metrics import MetricsLog, device_peak_flops, flops_per_token, plot_losses
from tinyslm.train.optim import decay_mask, learning_rate_schedule, make_optimizer
from tinyslm.train.step import cross_entropy, language_model_loss, make_eval_step, make_train_step
from tinyslm.train.task import Batches, TokenWindows, TrainingTask
from tinyslm.train.trainer import TrainResult, train

__all__ = [
    "train", "TrainResult", "load_run", "save_run", "Run", "Checkpointer", "make_optimizer", "learning_rate_schedule",
    "decay_mask", "make_train_step", "make_eval_step", "cross_entropy", "MetricsLog", "plot_losses",
    "flops_per_token", "device_peak_flops", "language_model_loss", "TrainingTask", "Batches", "TokenWindows",
]
