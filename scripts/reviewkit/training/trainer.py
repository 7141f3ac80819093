"""The Seq2SeqTrainer of this project: its collator, per-epoch statistics, rating balance and per-rating validation.

Nothing here reads a value back to the host on every step: the epoch's loss, example and token
counts and the first non-finite step accumulate on the device, and `EpochStatsCallback` reads
them where the Trainer synchronises anyway (logging, evaluation and saving steps, the epoch end).
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from ..common.errors import NonFiniteLossError
from .balance import downsample_indices, loss_weights, oversample_weights, rating_counts
from .samplers import EpochLengthGroupedSampler, EpochWeightedSampler, column_values

RATING_SLOTS = 6  # ratings 1..5 index a tensor directly; slot 0 stays empty


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed token cross-entropy, label token count) of each example; -100 labels are padding."""
    token_loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100,
                                                   reduction="none")
    return token_loss.sum(dim=1), (labels != -100).sum(dim=1)


class EpochStats:
    """Device-side sums of the current epoch; `close_epoch` reads them once and starts the next epoch."""

    def __init__(self):
        self.device = None
        self.started = time.perf_counter()
        self.last: dict[str, float] = {}

    def reset(self, device: torch.device) -> None:
        self.device = device
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, steps, examples, tokens
        self.first_bad_step = torch.full((), torch.iinfo(torch.int64).max, device=device)
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor, steps: float, step: int, examples: int, tokens: torch.Tensor) -> None:
        """One micro-batch: its loss (already divided for gradient accumulation), `steps` = 1 / accumulation."""
        if self.device is None:
            self.reset(loss.device)
        loss = loss.detach().to(self.device, torch.float64)
        # full_like and stack stay on the device; torch.tensor(..., device=cuda) would wait for the GPU.
        self.sums += torch.stack([loss, torch.full_like(loss, steps), torch.full_like(loss, examples),
                                  tokens.to(self.device, torch.float64)])
        first_bad = torch.minimum(self.first_bad_step, torch.full_like(self.first_bad_step, step))
        self.first_bad_step = torch.where(torch.isfinite(loss), self.first_bad_step, first_bad)

    def check_finite(self, output_dir: str) -> None:
        if self.device is None:
            return
        step = int(self.first_bad_step)
        if step != torch.iinfo(torch.int64).max:
            raise NonFiniteLossError(
                f"training loss became nan or inf at step {step}; stopped. The last good checkpoint stays in "
                f"{output_dir}; lower --learning_rate and rerun to resume")

    def close_epoch(self) -> dict[str, float]:
        """The finished epoch's train_loss, seconds, samples/s and tokens/s (empty if no step ran)."""
        self.last = {}
        if self.device is not None:
            loss, steps, examples, tokens = self.sums.tolist()
            seconds = time.perf_counter() - self.started
            if steps:
                self.last = {"train_loss": loss / steps, "train_seconds": seconds,
                             "train_samples_per_second": examples / seconds,
                             "train_tokens_per_second": tokens / seconds}
            self.reset(self.device)
        return self.last


class EpochStatsCallback(TrainerCallback):
    """Stops on a non-finite loss before anything is logged or saved, and closes each epoch's statistics.

    Added before the MLflow logger, which reads `stats.last` at the epoch end.
    """

    def __init__(self, stats: EpochStats):
        self.stats = stats

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.stats.device is not None:
            self.stats.reset(self.stats.device)

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_log or control.should_evaluate or control.should_save:
            self.stats.check_finite(args.output_dir)

    def on_epoch_end(self, args, state, control, **kwargs):
        self.stats.check_finite(args.output_dir)
        self.stats.close_epoch()


class ReviewCollator:
    """DataCollatorForSeq2Seq (dynamic padding to a multiple of 8), minus the sampler's length column,
    plus each example's rating."""

    def __init__(self, tokenizer, model):
        self.seq2seq = DataCollatorForSeq2Seq(tokenizer, model=model, padding=True, pad_to_multiple_of=8)

    def __call__(self, features):
        features = [{k: v for k, v in f.items() if k != "length"} for f in features]
        ratings = [f.pop("rating") for f in features] if "rating" in features[0] else None
        batch = self.seq2seq(features)
        if ratings is not None:
            batch["rating"] = torch.tensor(ratings, dtype=torch.long)
        return batch


class ReviewTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer that keeps epoch statistics on the device, balances ratings (a weighted sampler or
    per-rating loss weights) and reports the validation loss per rating from the same evaluation pass."""

    def __init__(self, *args, stats: EpochStats, sample_weights: np.ndarray | None = None,
                 rating_loss_weights: dict[int, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stats = stats
        self.sample_weights = sample_weights
        self.rating_loss_weights = None
        if rating_loss_weights:
            weights = torch.zeros(RATING_SLOTS)
            for rating, weight in rating_loss_weights.items():
                weights[rating] = weight
            self.rating_loss_weights = weights
        self._rating_sums = None

    def _get_train_sampler(self, train_dataset=None):
        if self.sample_weights is not None:
            return EpochWeightedSampler(self.sample_weights, self.args.seed)
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if self._groups_by_length(dataset):
            return EpochLengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                             column_values(dataset, self.args.length_column_name), self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        if self._groups_by_length(eval_dataset):  # what Trainer builds, over plain lengths
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthGroupedSampler(self.args.eval_batch_size,
                                        lengths=column_values(eval_dataset, self.args.length_column_name),
                                        generator=torch.Generator().manual_seed(seed))
        return super()._get_eval_sampler(eval_dataset)

    def _groups_by_length(self, dataset) -> bool:
        return (self.args.train_sampling_strategy == "group_by_length" and hasattr(dataset, "column_names")
                and self.args.length_column_name in dataset.column_names)

    def training_step(self, model, inputs, num_items_in_batch=None):
        examples = len(inputs["labels"])
        tokens = (inputs["labels"] != -100).sum() + inputs["attention_mask"].sum()
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.stats.add(loss, 1 / self.current_gradient_accumulation_steps, self.state.global_step + 1, examples,
                       tokens)
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ratings = inputs.pop("rating", None)
        if model.training and self.rating_loss_weights is not None:
            return self.weighted_loss(model, inputs, self.rating_loss_weights.to(ratings.device)[ratings],
                                      return_outputs)
        if model.training or ratings is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        self._add_rating_losses(outputs.logits, inputs["labels"], ratings)
        return (loss, outputs) if return_outputs else loss

    @staticmethod
    def weighted_loss(model, inputs, weights: torch.Tensor, return_outputs: bool = False):
        """Mean over the batch of (example weight x the example's mean token cross-entropy)."""
        outputs = model(**inputs)
        summed, counts = per_example_loss(outputs.logits, inputs["labels"])
        loss = (weights.to(summed.device) * summed / counts.clamp(min=1)).mean()
        return (loss, outputs) if return_outputs else loss

    def _add_rating_losses(self, logits, labels, ratings) -> None:
        summed, counts = per_example_loss(logits, labels)
        self._rating_sums[0].index_add_(0, ratings, summed.double())
        self._rating_sums[1].index_add_(0, ratings, counts.double())

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        self._rating_sums = torch.zeros(2, RATING_SLOTS, dtype=torch.float64, device=self.args.device)
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        sums = self.accelerator.reduce(self._rating_sums, reduction="sum").tolist()
        present = [r for r in range(1, RATING_SLOTS) if sums[1][r]]
        if len(present) > 1:  # one rating's loss would only repeat eval_loss
            for rating in present:
                output.metrics[f"{metric_key_prefix}_rating_{rating}_loss"] = sums[0][rating] / sums[1][rating]
        return output


def balanced(train_set, config, seed: int):
    """(training set, sampler weights or None, per-rating loss weights or None, MLflow params) for --balance."""
    ratings = np.asarray(column_values(train_set, "rating"))
    params = {"balance_counts_before": json.dumps(rating_counts(ratings))}
    if config.balance == "oversample":
        weights = oversample_weights(ratings)
        expected = {r: round(len(ratings) * float(weights[ratings == r].sum() / weights.sum()), 1)
                    for r in rating_counts(ratings)}
        params["balance_expected_counts_per_epoch"] = json.dumps(expected)
        return train_set, weights, None, params
    if config.balance == "weighted":
        per_rating = loss_weights(ratings, config.balance_weight_cap)
        params["balance_loss_weights"] = json.dumps({r: round(w, 4) for r, w in per_rating.items()})
        return train_set, None, per_rating, params
    if config.balance == "downsample":
        kept = downsample_indices(ratings, config.balance_max_per_rating, seed)
        params["balance_counts_after"] = json.dumps(rating_counts(ratings[kept]))
        return train_set.select(kept), None, None, params
    return train_set, None, None, params
