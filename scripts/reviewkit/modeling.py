"""The seq2seq model: ruT5-small's architecture, a small offline demo model, and safe loading.

transformers 5.x trap (checked on 5.24.0): `T5Config.__post_init__` pops `tie_word_embeddings`,
stores `scale_decoder_outputs = (tie_word_embeddings is not False)` and then forces
`config.tie_word_embeddings = True`. So `T5ForConditionalGeneration(T5Config(tie_word_embeddings=False))`
ties `lm_head.weight` to `shared.weight` (54.4M parameters for ruT5-small instead of the published
64.6M), although it does skip the decoder output scaling as an untied T5 v1.1 model should.
Setting the flag to False *before* construction unties everything: encoder and decoder then get
their own input embeddings as well (two extra vocab x d_model matrices). `from_pretrained` gets an
untied checkpoint right (both tensors are in the file and differ, so it leaves them apart, with a
warning), but keeps the flag True, so a later `tie_weights()` or `resize_token_embeddings()` would
tie the head again. Hence `untied_t5` and `_flag_separate_head` below.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import torch
import transformers
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration, T5Tokenizer

DEMO_MARKER = "demo_model.json"
DEMO_BUILDER_VERSION = 2
DEMO_VOCAB_SIZE = 3000
# Always in the demo vocabulary, so any Russian text and prompt encodes without <unk>.
_DEMO_REQUIRED_CHARS = (
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"
    "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
    "0123456789.,!?:;-|()«»\"'"
)
_PAD_ID, _EOS_ID, _UNK_ID = 0, 1, 2

_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_HUB_PROBE_TIMEOUT_S = 10
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class ModelSourceError(Exception):
    """The model cannot be loaded or built; the message is one line for the user."""


def untied_t5_config(**architecture) -> T5Config:
    """A T5 config with an untied LM head that stays untied (see the module docstring)."""
    config = T5Config(
        tie_word_embeddings=False,  # recorded by 5.x as scale_decoder_outputs=False
        feed_forward_proj="gated-gelu",
        pad_token_id=_PAD_ID,
        eos_token_id=_EOS_ID,
        decoder_start_token_id=_PAD_ID,
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        **architecture,
    )
    config.tie_word_embeddings = False  # 5.x forced it back to True in __post_init__
    return config


def untied_t5(config: T5Config, seed: int) -> T5ForConditionalGeneration:
    """Random T5: one embedding shared by encoder and decoder, a separate LM head.

    `config.tie_word_embeddings` is False, so construction ties nothing and initialises `lm_head`
    on its own (normal, std = initializer_factor, as transformers does for untied T5 heads);
    `set_input_embeddings` then points encoder and decoder at the shared embedding.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    model.set_input_embeddings(model.shared)
    return model


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; a tensor shared by several modules counts once."""
    params = list(model.parameters())  # parameters() already skips shared duplicates
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return trainable, sum(p.numel() for p in params)


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
        tokenizer = _train_demo_tokenizer(corpus)
        model = untied_t5(_demo_config(len(tokenizer)), seed)
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


def _train_demo_tokenizer(corpus: list[str]) -> T5Tokenizer:
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
        vocab_size=DEMO_VOCAB_SIZE,
        hard_vocab_limit=False,  # a small corpus yields fewer pieces
        character_coverage=1.0,
        required_chars=_DEMO_REQUIRED_CHARS,
        normalization_rule_name="identity",  # T5Tokenizer has no normaliser either
        pad_id=_PAD_ID,
        eos_id=_EOS_ID,
        unk_id=_UNK_ID,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    pieces = sentencepiece.SentencePieceProcessor(model_proto=model_proto.getvalue())
    vocab = [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(pieces.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def _demo_config(vocab_size: int) -> T5Config:
    return untied_t5_config(
        vocab_size=vocab_size, d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2, num_decoder_layers=2
    )


def load_model_and_tokenizer(
    name_or_path: str,
) -> tuple[T5ForConditionalGeneration, transformers.PreTrainedTokenizerBase]:
    """Load a T5 model and its tokenizer from a local directory or a Hugging Face hub id.

    Only safetensors weights are read; remote code is never run. Raises ModelSourceError.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        _check_model_dir(path)
        try:
            model, tokenizer = _load(str(path), local_files_only=True)
        except Exception as exc:  # transformers, tokenizers and safetensors raise many types
            raise ModelSourceError(f"cannot load model from {path}: {_first_line(exc)}") from None
    elif _looks_local(name_or_path):
        reason = " (it is a file)" if path.exists() else ""
        raise ModelSourceError(f"model directory not found: {name_or_path}{reason}")
    else:
        model, tokenizer = _load_from_hub(name_or_path)
    _flag_separate_head(model)
    return model, tokenizer


def _looks_local(name: str) -> bool:
    return Path(name).expanduser().exists() or name.startswith(("/", "./", "../", "~")) or not _HUB_ID.match(name)


def _check_model_dir(path: Path) -> None:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelSourceError(f"{path} has no config.json; not a saved model directory") from None
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"{path}/config.json is unreadable: {_first_line(exc)}") from None
    if config.get("model_type") != "t5":
        raise ModelSourceError(f"{path} holds a '{config.get('model_type')}' model, not a T5 one")
    files = [f.name for f in path.iterdir() if f.is_file()]
    if any(name.endswith(".safetensors") for name in files):
        return
    if any(name.endswith(_PICKLE_SUFFIXES) for name in files):
        raise ModelSourceError(
            f"{path} has no .safetensors weights; pickle checkpoints (.bin) are refused: "
            "convert it with save_pretrained(safe_serialization=True)"
        )
    raise ModelSourceError(f"{path} has a config.json but no model weights (.safetensors)")


def _load_from_hub(model_id: str) -> tuple:
    """Fail fast when the hub is unreachable: one request, not transformers' minute of retries.

    Unreachable (offline, HF_HUB_OFFLINE=1, unknown id): only the local hub cache is tried.
    """
    reachable = _hub_reachable(model_id)
    try:
        return _load(model_id, local_files_only=not reachable)
    except Exception as exc:  # the hub client raises many types
        if reachable:
            reason = _first_line(exc)
            raise ModelSourceError(f"cannot load model '{model_id}' from the Hugging Face hub: {reason}") from None
        raise ModelSourceError(
            f"cannot load model '{model_id}' from the Hugging Face hub (offline?): "
            "pass --model_name_or_path PATH to a local copy, or --demo"
        ) from None


def _hub_reachable(model_id: str) -> bool:
    import huggingface_hub

    try:
        huggingface_hub.model_info(model_id, timeout=_HUB_PROBE_TIMEOUT_S)
    except Exception:  # offline mode, network errors, unknown or gated repository
        return False
    return True


class _UntiedHeadNotice(logging.Filter):
    """Drops transformers' warning that an untied checkpoint's head was left untied: that is what we want."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("The tied weights mapping and config for this model")


def _load(source: str, local_files_only: bool) -> tuple:
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only, trust_remote_code=False)
    notice = _UntiedHeadNotice()
    transformers_logger = logging.getLogger("transformers.modeling_utils")
    transformers_logger.addFilter(notice)
    try:
        model = T5ForConditionalGeneration.from_pretrained(source, local_files_only=local_files_only,
                                                           use_safetensors=True)
    finally:
        transformers_logger.removeFilter(notice)
    return model, tokenizer


def _flag_separate_head(model: T5ForConditionalGeneration) -> None:
    """Make the config say what was loaded, so tie_weights()/resize_token_embeddings() keep the head apart."""
    if model.lm_head.weight is not model.shared.weight:
        model.config.tie_word_embeddings = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
