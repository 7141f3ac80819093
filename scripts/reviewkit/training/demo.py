"""The offline demo: the committed demo reviews, prepared, and a tiny model built from them.

The model: a tokenizer trained on the demo texts and a small random T5 of ruT5-small's design
(untied head), saved like any checkpoint, so the real loading code is what the demo runs.

Both are kept under the run's output directory (OUTPUT_DIR/demo_data, OUTPUT_DIR/demo_model) and
reused by a rerun; the only file read from the checkout is the shipped data/demo_reviews.tskv.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from transformers import T5Config, T5Tokenizer

from ..common.errors import ModelSourceError
from ..common.paths import PROJECT_ROOT
from ..model.modeling import EOS_ID, PAD_ID, UNK_ID, count_parameters, untied_t5, untied_t5_config

DEMO_REVIEWS = PROJECT_ROOT / "data" / "demo_reviews.tskv"
DATA_DIR_NAME = "demo_data"
MODEL_DIR_NAME = "demo_model"

DEMO_MARKER = "demo_model.json"
DEMO_BUILDER_VERSION = 2
DEMO_VOCAB_SIZE = 3000
# Always in the demo vocabulary, so any Russian text and prompt encodes without <unk>.
DEMO_REQUIRED_CHARS = (
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
    "0123456789.,!?:;-|()«»\"'"
)


def prepare_demo_data(output_dir: Path, ratings: tuple[int, ...] | None) -> tuple[Path, dict]:
    """(prepared data directory, its report) under `output_dir`."""
    from ..data.pipeline import PrepareConfig, prepare_dataset

    data_dir = output_dir / DATA_DIR_NAME
    report = prepare_dataset(str(DEMO_REVIEWS), data_dir, PrepareConfig(ratings=ratings), progress=False)
    return data_dir, report


def build_demo_base_model(output_dir: Path, data_dir: Path) -> Path:
    """A tokenizer trained on the demo training split and a small random T5, saved under `output_dir`."""
    import pyarrow.parquet as pq

    train = pq.read_table(data_dir / "train.parquet", columns=["text", "prompt"])
    texts = train.column("text").to_pylist() + train.column("prompt").to_pylist()
    return build_demo_model(texts, output_dir / MODEL_DIR_NAME, seed=0)


def build_demo_model(texts: Iterable[str], output_dir: str | Path, seed: int = 0) -> Path:
    """Train a tokenizer on `texts`, build a small random T5 and save both into `output_dir`.

    Reuses an existing build made from the same texts and seed. The same texts and seed give
    byte-identical weight and tokenizer files.
    """
    output_dir = Path(output_dir)
    corpus = [" ".join(text.split()) for text in texts]
    corpus = [text for text in corpus if text]
    if not corpus:
        raise ValueError("build_demo_model needs at least one non-blank text")
    fingerprint = _demo_fingerprint(corpus, seed)
    if _demo_marker(output_dir).get("fingerprint") == fingerprint:
        return output_dir
    _check_replaceable(output_dir)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.", suffix=".tmp"))
    try:
        tokenizer = train_unigram_tokenizer(corpus, DEMO_VOCAB_SIZE)
        model = untied_t5(demo_config(len(tokenizer)), seed)
        model.save_pretrained(build_dir, safe_serialization=True)
        tokenizer.save_pretrained(build_dir)
        marker = {
            "fingerprint": fingerprint,
            "builder_version": DEMO_BUILDER_VERSION,
            "seed": seed,
            "texts": len(corpus),
            "vocab_size": len(tokenizer),
            "parameters": count_parameters(model)[1],
        }
        (build_dir / DEMO_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _replace_dir(build_dir, output_dir)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    return output_dir


def _demo_fingerprint(corpus: list[str], seed: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{DEMO_BUILDER_VERSION}:{seed}:{len(corpus)}\n".encode())
    for text in corpus:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    return digest.hexdigest()


def _demo_marker(output_dir: Path) -> dict:
    try:
        return json.loads((output_dir / DEMO_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _check_replaceable(output_dir: Path) -> None:
    """Only an empty directory or an older demo build may be replaced."""
    if not output_dir.exists():
        return
    if not output_dir.is_dir():
        raise ModelSourceError(f"demo model path {output_dir} exists and is not a directory")
    if any(output_dir.iterdir()) and not (output_dir / DEMO_MARKER).is_file():
        raise ModelSourceError(f"{output_dir} is not empty and holds no demo model; refusing to overwrite it")


def _replace_dir(new: Path, target: Path) -> None:
    """Rename the finished build `new` onto `target`; an older build there is moved aside, then deleted."""
    if not target.exists():
        os.replace(new, target)
        return
    stale = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
    os.replace(target, stale)  # renaming a directory onto an empty one is allowed
    os.replace(new, target)
    shutil.rmtree(stale, ignore_errors=True)


def train_unigram_tokenizer(corpus: list[str], vocab_size: int) -> T5Tokenizer:
    """A Unigram tokenizer like T5's: <pad>=0, </s>=1, <unk>=2, Metaspace spaces, </s> appended.

    The pieces and scores come from sentencepiece's trainer, which is deterministic with one
    thread; `tokenizers`' UnigramTrainer is not (it scores rare characters in hash-set order,
    so each run writes a different tokenizer.json). They are served by T5Tokenizer, the
    `tokenizers`-backed (fast) T5 tokenizer, with no sentinel <extra_id_*> tokens.
    """
    import sentencepiece

    model_proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model_proto,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # a small corpus yields fewer pieces
        character_coverage=1.0,
        required_chars=DEMO_REQUIRED_CHARS,
        normalization_rule_name="identity",  # T5Tokenizer has no normaliser either
        pad_id=PAD_ID,
        eos_id=EOS_ID,
        unk_id=UNK_ID,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    pieces = sentencepiece.SentencePieceProcessor(model_proto=model_proto.getvalue())
    vocab = [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(pieces.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def demo_config(vocab_size: int) -> T5Config:
    return untied_t5_config(
        vocab_size=vocab_size, d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2, num_decoder_layers=2
    )
