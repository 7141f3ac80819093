"""Rating balance: sampling weights, loss weights and downsampling on a small known dataset."""

import numpy as np
import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from reviewkit.training.balance import downsample_indices, loss_weights, oversample_weights, rating_counts
from reviewkit.training.samplers import EpochWeightedSampler
from reviewkit.training.trainer import ReviewTrainer

RATINGS = np.array([5] * 60 + [4] * 20 + [1] * 10 + [2] * 10)


def test_oversample_gives_every_rating_the_same_expected_count():
    weights = oversample_weights(RATINGS)
    expected = {r: len(RATINGS) * weights[RATINGS == r].sum() / weights.sum() for r in (1, 2, 4, 5)}
    assert expected == pytest.approx({1: 25, 2: 25, 4: 25, 5: 25})
    sampler = EpochWeightedSampler(weights, seed=3)
    drawn = []
    for epoch in range(400):
        sampler.set_epoch(epoch)
        drawn.extend(RATINGS[list(sampler)])
    shares = {r: c / len(drawn) for r, c in rating_counts(drawn).items()}
    assert shares == pytest.approx({1: 0.25, 2: 0.25, 4: 0.25, 5: 0.25}, abs=0.01)


def test_oversample_draw_depends_only_on_seed_and_epoch():
    def draw(seed, epoch):
        sampler = EpochWeightedSampler(oversample_weights(RATINGS), seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert draw(1, 2) == draw(1, 2)  # a resumed run redraws the same epoch
    assert draw(1, 2) != draw(1, 3) and draw(1, 2) != draw(2, 2)
    assert len(draw(1, 0)) == len(RATINGS)


def test_loss_weights_are_inverse_frequency_with_mean_one_and_a_cap():
    weights = loss_weights(RATINGS, weight_cap=10)
    assert weights[1] / weights[5] == pytest.approx(6) and weights[4] / weights[5] == pytest.approx(3)
    assert np.mean([weights[r] for r in RATINGS]) == pytest.approx(1)
    capped = loss_weights(RATINGS, weight_cap=2)
    assert capped[1] / capped[5] == pytest.approx(2) and capped[4] / capped[5] == pytest.approx(2)
    assert np.mean([capped[r] for r in RATINGS]) == pytest.approx(1)


def test_downsample_caps_each_rating_at_the_rarest_count_or_the_given_cap():
    kept = downsample_indices(RATINGS, None, seed=0)
    assert rating_counts(RATINGS[kept]) == {1: 10, 2: 10, 4: 10, 5: 10}
    assert list(kept) == sorted(set(kept.tolist()))
    capped = downsample_indices(RATINGS, 15, seed=0)
    assert rating_counts(RATINGS[capped]) == {1: 10, 2: 10, 4: 15, 5: 15}
    assert list(downsample_indices(RATINGS, 15, seed=0)) == list(capped)
    assert list(downsample_indices(RATINGS, 15, seed=1)) != list(capped)


def test_weighted_loss_is_the_weighted_mean_of_example_losses():
    torch.manual_seed(0)
    config = T5Config(vocab_size=50, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=8,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = T5ForConditionalGeneration(config).eval()
    inputs = {"input_ids": torch.randint(2, 50, (3, 6)), "attention_mask": torch.ones(3, 6, dtype=torch.long),
              "labels": torch.randint(2, 50, (3, 5))}
    with torch.no_grad():
        plain = model(**inputs).loss  # equal label lengths: the token mean is the mean of example means
        equal = ReviewTrainer.weighted_loss(model, inputs, torch.ones(3))
        per_example = [ReviewTrainer.weighted_loss(model, {k: v[i:i + 1] for k, v in inputs.items()}, torch.ones(1))
                       for i in range(3)]
        weighted = ReviewTrainer.weighted_loss(model, inputs, torch.tensor([3.0, 0.0, 0.0]))
    assert equal == pytest.approx(plain.item(), rel=1e-5)
    assert weighted == pytest.approx(per_example[0].item(), rel=1e-5)  # 3 x loss_0 / 3 examples
