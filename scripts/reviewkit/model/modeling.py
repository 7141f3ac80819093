"""The seq2seq model: an untied T5 built in code, and safe loading from a directory or the hub.

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

import json
import logging
import re
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

from ..common.errors import ModelSourceError, first_line

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2

_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_HUB_PROBE_TIMEOUT_S = 10
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def untied_t5_config(**architecture) -> T5Config:
    """A T5 config with an untied LM head that stays untied (see the module docstring)."""
    config = T5Config(
        tie_word_embeddings=False,  # recorded by 5.x as scale_decoder_outputs=False
        feed_forward_proj="gated-gelu",
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID,
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
            raise ModelSourceError(f"cannot load model from {path}: {first_line(exc)}") from None
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
        raise ModelSourceError(f"{path}/config.json is unreadable: {first_line(exc)}") from None
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
            reason = first_line(exc)
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
