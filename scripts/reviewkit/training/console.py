"""What a training run prints: progress bars and one line per epoch; the full log dicts go to MLflow.

`--verbose` keeps transformers' own printing (a metric dict per log and evaluation).
"""

from __future__ import annotations

from tqdm import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from .trainer import EpochStats


class QuietProgressCallback(ProgressCallback):
    """transformers' progress bars without the metric dict it writes under them at every log."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


class EpochLineCallback(TrainerCallback):
    """After each epoch's evaluation: epoch, train loss, validation loss (overall and per rating), speed."""

    def __init__(self, stats: EpochStats):
        self.stats = stats

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics or "eval_loss" not in metrics:
            return
        epoch_end = state.epoch == round(state.epoch)
        parts = [f"epoch {state.epoch:.0f}/{args.num_train_epochs:g}" if epoch_end
                 else f"epoch {state.epoch:.2f}/{args.num_train_epochs:g}"]
        train = self.stats.last if epoch_end else {}  # the closed epoch's figures belong to its end only
        if train:
            parts.append(f"train_loss {train['train_loss']:.4f}")
        parts.append(f"eval_loss {metrics['eval_loss']:.4f}")
        by_rating = sorted((int(k.split("_")[2]), v) for k, v in metrics.items()
                           if k.startswith("eval_rating_") and k.endswith("_loss"))
        if by_rating:
            parts.append("by rating " + " ".join(f"{r}: {v:.3f}" for r, v in by_rating))
        if train:
            parts.append(f"{train['train_seconds']:.1f} s, {train['train_samples_per_second']:,.1f} samples/s, "
                         f"{train['train_tokens_per_second']:,.0f} tokens/s")
        tqdm.write(" | ".join(parts))


def make_quiet(trainer, stats: EpochStats) -> None:
    """Swap transformers' printing callbacks for the quiet progress bars (unless disabled) plus the epoch line."""
    trainer.pop_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgressCallback)
    trainer.add_callback(EpochLineCallback(stats))
