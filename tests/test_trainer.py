"""ReviewTrainer's pieces in-process: per-rating validation from one pass, device-side epoch statistics, the config."""

import math

import datasets
import numpy as np
import pytest
import torch
from datasets import Dataset, load_from_disk
from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

from reviewkit.common.errors import NonFiniteLossError
from reviewkit.training.config import parse_config
from reviewkit.training.trainer import (EpochStats, EpochStatsCallback, ReviewCollator, ReviewTrainer, balanced,
                                        per_example_loss)


def tiny_model():
    torch.manual_seed(0)
    config = T5Config(vocab_size=40, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=8,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5ForConditionalGeneration(config)


def tokenizer():
    return T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁a", -1.0)], extra_ids=0)


def examples(n, seed):
    g = torch.Generator().manual_seed(seed)
    rows = {"input_ids": [], "labels": [], "length": [], "rating": []}
    for i in range(n):
        prompt = torch.randint(3, 40, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g).tolist() + [1]
        review = torch.randint(3, 40, (int(torch.randint(2, 12, (1,), generator=g)),), generator=g).tolist() + [1]
        rows["input_ids"].append(prompt)
        rows["labels"].append(review)
        rows["length"].append(len(prompt) + len(review))
        rows["rating"].append([5, 5, 5, 1, 2][i % 5])
    return Dataset.from_dict(rows)


def trainer_for(tmp_path, validation, train_set=None, **flags):
    argv = ["--data_dir", "x", "--output_dir", str(tmp_path), "--per_device_eval_batch_size", "4",
            "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--bf16", "false"]
    for flag, value in flags.items():
        argv += [f"--{flag}", str(value)]
    config, args = parse_config("test", {}, {}, argv)
    model, stats = tiny_model(), EpochStats()
    train_set = examples(16, 1) if train_set is None else train_set
    return ReviewTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=validation,
                         data_collator=ReviewCollator(tokenizer(), model), stats=stats,
                         callbacks=[EpochStatsCallback(stats)])


def test_per_rating_validation_loss_from_one_pass_equals_each_ratings_own_token_mean(tmp_path):
    validation = examples(23, 2)
    trainer = trainer_for(tmp_path, validation)
    metrics = trainer.evaluate()
    model, collator = trainer.model.eval(), ReviewCollator(tokenizer(), trainer.model)
    for rating in (1, 2, 5):
        rows = [dict(r) for r in validation if r["rating"] == rating]
        batch = collator(rows)
        batch.pop("rating")
        with torch.no_grad():
            summed, counts = per_example_loss(model(**batch).logits, batch["labels"])
        assert metrics[f"eval_rating_{rating}_loss"] == pytest.approx((summed.sum() / counts.sum()).item(), rel=1e-5)
    assert "eval_rating_3_loss" not in metrics and "eval_rating_4_loss" not in metrics


def test_epoch_stats_mean_over_optimizer_steps_and_the_first_non_finite_step():
    stats = EpochStats()
    for step, loss in enumerate([2.0, 4.0, float("nan"), 1.0, float("inf")], start=1):
        stats.add(torch.tensor(loss / 2), 0.5, step, 8, torch.tensor(100))  # two micro-batches per step
    with pytest.raises(NonFiniteLossError, match="at step 3;"):
        stats.check_finite("out")
    stats = EpochStats()
    for step, loss in enumerate([2.0, 4.0, 6.0], start=1):
        stats.add(torch.tensor(loss / 2), 0.5, step, 8, torch.tensor(100))
    stats.check_finite("out")
    epoch = stats.close_epoch()
    assert epoch["train_loss"] == pytest.approx(12.0 / 2 / 1.5)
    assert epoch["train_samples_per_second"] > 0 and math.isfinite(epoch["train_tokens_per_second"])
    assert stats.close_epoch() == {}  # the next epoch starts empty


def test_collator_drops_the_length_and_carries_ratings_with_padding_to_a_multiple_of_8():
    model = tiny_model()
    batch = ReviewCollator(tokenizer(), model)([dict(r) for r in examples(5, 3)])
    assert "length" not in batch and batch["rating"].tolist() == [5, 5, 5, 1, 2]
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["labels"].shape[1] % 8 == 0
    assert (batch["labels"] == -100).any()


def test_defaults_layer_script_demo_and_command_line():
    defaults = {"num_train_epochs": 10, "seed": 7, "balance": "weighted", "lora": True, "lora_r": 4}
    config, args = parse_config("x", defaults, {"num_train_epochs": 2}, ["--demo", "--lora_r", "8"])
    assert (args.num_train_epochs, args.seed, config.balance, config.lora, config.lora_r) == (2, 7, "weighted", True, 8)
    assert args.eval_strategy.value == "epoch" and args.logging_nan_inf_filter is False
    config, args = parse_config("x", defaults, {"num_train_epochs": 2}, ["--data_dir", "d", "--keep_best"])
    assert args.num_train_epochs == 10 and args.load_best_model_at_end is True
    with pytest.raises(TypeError, match="unknown settings in DEFAULTS: lora_rank"):
        parse_config("x", {"lora_rank": 4}, {}, ["--demo"])


def test_a_training_epoch_closes_its_statistics_and_validates_per_rating(tmp_path):
    trainer = trainer_for(tmp_path, examples(8, 4), num_train_epochs=1, logging_steps=1, save_strategy="no")
    trainer.train()
    last_logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert trainer.stats.last["train_loss"] == pytest.approx(sum(last_logged) / len(last_logged), rel=1e-3)
    assert any("eval_rating_1_loss" in entry for entry in trainer.state.log_history)


def memory_mapped_examples(n, seed, directory):
    """n tokenised-looking rows saved and reopened as the Trainer gets them: a memory-mapped Arrow table."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 300, n)
    Dataset.from_dict({"input_ids": [[3, 1]] * n, "labels": [[4, 1]] * n, "length": lengths,
                       "rating": rng.choice([1, 2, 3, 4, 5], n)}).save_to_disk(str(directory))
    return load_from_disk(str(directory))


class TableQueries:
    """Counts the Arrow table queries of datasets and the rows they return (a per-row read costs one query each)."""

    def __init__(self, monkeypatch):
        self.calls = self.rows = 0
        query_table = datasets.arrow_dataset.query_table

        def counted(*args, **kwargs):
            table = query_table(*args, **kwargs)
            self.calls += 1
            self.rows += table.num_rows
            return table

        monkeypatch.setattr(datasets.arrow_dataset, "query_table", counted)


def test_length_grouped_samplers_read_the_lengths_once_not_once_per_row_and_epoch(tmp_path, monkeypatch):
    # transformers hands LengthGroupedSampler the lazy column, which it indexes row by row at every epoch:
    # 2 x 20,000 queries over the whole table for two epochs here, minutes at the real 447k rows.
    rows = 20_000
    train = memory_mapped_examples(rows, 0, tmp_path / "train")
    validation = memory_mapped_examples(2_000, 1, tmp_path / "validation")
    trainer = trainer_for(tmp_path / "out", validation, train)
    queries = TableQueries(monkeypatch)
    sampler = trainer._get_train_sampler()
    epochs = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    eval_order = list(trainer._get_eval_sampler(validation))
    assert queries.calls <= 2  # one read per split, whatever its size
    assert queries.rows <= rows + len(validation)
    lengths = train["length"][:]
    assert all(sorted(order) == list(range(rows)) for order in epochs) and epochs[0] != epochs[1]
    assert sorted(eval_order) == list(range(len(validation)))
    # Still transformers' grouping: megabatches of 50 batches, each sorted longest first (but for its first element,
    # which may be swapped with the overall longest).
    megabatch = 50 * 4
    for start in range(0, rows, megabatch):
        grouped = [lengths[i] for i in epochs[1][start + 1:start + megabatch]]
        assert grouped == sorted(grouped, reverse=True)


def test_length_grouped_order_depends_only_on_seed_and_epoch_as_torchrun_ranks_need(tmp_path):
    train = examples(64, 0)

    def order(seed, epoch, global_seed=0):
        sampler = trainer_for(tmp_path, examples(8, 1), train, seed=seed)._get_train_sampler()
        sampler.set_epoch(epoch)
        torch.manual_seed(global_seed)  # ranks consume the global RNG differently; the order must not care
        return list(sampler)

    assert order(1, 0) == order(1, 0, global_seed=5) and order(1, 1) == order(1, 1, global_seed=6)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)


def test_balance_reads_the_ratings_once(tmp_path, monkeypatch):
    train = memory_mapped_examples(20_000, 0, tmp_path / "train")
    config, _ = parse_config("test", {}, {}, ["--data_dir", "x", "--balance", "oversample"])
    queries = TableQueries(monkeypatch)
    _, weights, _, params = balanced(train, config, seed=0)
    assert queries.calls == 1 and len(weights) == 20_000 and "balance_counts_before" in params
