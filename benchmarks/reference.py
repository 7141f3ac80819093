"""Pieces the benchmarks and tests share that the product does not use.

- ruT5-small's published architecture with random weights (the real model cannot be downloaded
  here): the shape that speed and memory are measured on;
- keyword extraction for a list of texts in one call (the pipeline streams the same steps in chunks).
"""

from __future__ import annotations

from typing import Sequence

import project_path  # noqa: F401  (scripts/ on sys.path)

from reviewkit.data.keywords import DEFAULT_NUM_KEYWORDS, LemmaCounts, Lemmatizer, top_keywords
from reviewkit.model.modeling import untied_t5, untied_t5_config

RUT5_SMALL_ID = "cointegrated/rut5-small"


def rut5_small_config():
    """The published architecture of cointegrated/rut5-small.

    Build the model with `random_rut5_small()`, not `T5ForConditionalGeneration(config)`: with this
    config the latter gives the encoder and decoder their own embeddings (see reviewkit.model.modeling).
    """
    return untied_t5_config(vocab_size=20100, d_model=512, d_ff=1024, d_kv=64, num_heads=6, num_layers=8,
                            num_decoder_layers=8, relative_attention_num_buckets=32)


def random_rut5_small(seed: int = 0):
    """Randomly initialised ruT5-small with an untied LM head: 64.6M parameters."""
    return untied_t5(rut5_small_config(), seed)


def extract_keywords(texts: Sequence[str], k: int = DEFAULT_NUM_KEYWORDS, lemmatizer: Lemmatizer | None = None) -> list[list[str]]:
    lemmatizer = lemmatizer or Lemmatizer()
    documents = [lemmatizer.content_lemma_ids(text) for text in texts]
    counts = LemmaCounts()
    counts.add([i for doc in documents for i in doc], [len(doc) for doc in documents], lemmatizer.lemmas)
    return top_keywords(*counts.matrix(), k)
