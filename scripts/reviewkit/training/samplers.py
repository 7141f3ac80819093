"""The training samplers: each epoch's order depends only on (seed, epoch).

So every torchrun rank walks the same order and trains on its own share of it (accelerate splits
one sampler's batches between the ranks), and a resumed run sees the order an uninterrupted one
would. Trainer calls `set_epoch` at the start of every epoch.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices


def column_values(dataset, name: str) -> list:
    """A whole column of a datasets.Dataset as a plain list, read in one query.

    datasets 5 gives `dataset[name]` as a lazy Column: each `column[i]` queries the memory-mapped
    table anew, so code that indexes it element by element (transformers' LengthGroupedSampler
    does, at every epoch) costs more than linear time: minutes at 447k rows.
    """
    return list(dataset[name][:])


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class EpochLengthGroupedSampler(LengthGroupedSampler):
    """transformers' length grouping (random megabatches, each sorted by length) over plain lengths.

    transformers' own sampler draws from the process's global RNG, which torchrun ranks consume
    differently: their orders then differ and their shards overlap (in a 2-rank test, 482 of 640
    examples were trained per epoch, some twice).
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(get_length_grouped_indices(self.lengths, self.batch_size,
                                               generator=epoch_generator(self.seed, self.epoch)))


class EpochWeightedSampler(torch.utils.data.Sampler):
    """Weighted sampling with replacement (`--balance oversample`), a new draw each epoch."""

    def __init__(self, weights: np.ndarray, seed: int):
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.weights)

    def __iter__(self):
        yield from torch.multinomial(self.weights, len(self.weights), replacement=True,
                                     generator=epoch_generator(self.seed, self.epoch)).tolist()
