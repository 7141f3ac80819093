"""ReviewTrainer's pieces in-process: per-rating validation from one pass, device-side epoch statistics, the config."""

import math

import pytest
import torch
from datasets import Dataset
from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

from reviewkit.config import parse_config
from reviewkit.trainer import EpochStats, EpochStatsCallback, NonFiniteLossError, ReviewCollator, ReviewTrainer, per_example_loss


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


def trainer_for(tmp_path, validation, **flags):
    argv = ["--data_dir", "x", "--output_dir", str(tmp_path), "--per_device_eval_batch_size", "4",
            "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--bf16", "false"]
    for flag, value in flags.items():
        argv += [f"--{flag}", str(value)]
    config, args = parse_config("test", {}, {}, argv)
    model, stats = tiny_model(), EpochStats()
    return ReviewTrainer(model=model, args=args, train_dataset=examples(16, 1), eval_dataset=validation,
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
