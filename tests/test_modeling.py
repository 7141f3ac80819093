import json
import time
from itertools import product

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file
from transformers import T5Config, T5ForConditionalGeneration

from reference import RUT5_SMALL_ID, random_rut5_small, rut5_small_config

from reviewkit.common.errors import ModelSourceError
from reviewkit.model.modeling import count_parameters, load_model_and_tokenizer
from reviewkit.training.demo import DEMO_MARKER, build_demo_model

RUT5_VOCAB, RUT5_D_MODEL = 20100, 512
SENTENCE = "Очень уютное кафе, вкусный кофе и свежие десерты!"


def demo_texts() -> list[str]:
    """About 200 short Russian reviews and prompts."""
    openers = ["Очень уютное кафе", "Хороший магазин", "Неплохая кофейня", "Отличная пекарня", "Тихое место"]
    details = ["вкусный кофе", "свежие десерты", "вежливый персонал", "быстрое обслуживание", "низкие цены"]
    endings = ["Обязательно вернусь!", "Рекомендую друзьям.", "Всё понравилось.", "Спасибо!"]
    reviews = [f"{o}, {d} и чистые столы. {e}" for o, d, e in product(openers, details, endings)]
    prompts = [f"рейтинг: {r} | рубрики: Кафе; Кофейня | ключевые слова: {d}" for r, d in product(range(1, 6), details)]
    return reviews + prompts + reviews[:75]


@pytest.fixture(scope="module")
def rut5_model():
    return random_rut5_small(seed=0)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return build_demo_model(demo_texts(), tmp_path_factory.mktemp("demo") / "model", seed=0)


def single_line(exc_info) -> str:
    message = str(exc_info.value)
    assert message and "\n" not in message
    return message


# ruT5-small architecture


def test_rut5_small_config_has_published_constants():
    config = rut5_small_config()
    expected = dict(
        vocab_size=20100, d_model=512, d_ff=1024, d_kv=64, num_heads=6, num_layers=8, num_decoder_layers=8,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, relative_attention_num_buckets=32,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, dropout_rate=0.1, layer_norm_epsilon=1e-6,
    )
    assert {key: getattr(config, key) for key in expected} == expected
    assert config.scale_decoder_outputs is False  # untied T5 v1.1 heads do not rescale decoder outputs


def test_random_rut5_small_has_untied_head_and_published_size(rut5_model):
    trainable, total = count_parameters(rut5_model)
    assert trainable == total
    assert abs(total - 64_600_000) <= 100_000
    assert rut5_model.lm_head.weight.data_ptr() != rut5_model.shared.weight.data_ptr()
    assert rut5_model.encoder.embed_tokens.weight is rut5_model.shared.weight
    assert rut5_model.decoder.embed_tokens.weight is rut5_model.shared.weight
    assert rut5_model.config.tie_word_embeddings is False


def test_plain_construction_ties_head_in_transformers_5(rut5_model):
    """The trap random_rut5_small avoids: the config's tie_word_embeddings=False is overridden."""
    with torch.device("meta"):
        tied = T5ForConditionalGeneration(T5Config(**rut5_small_config().to_diff_dict()))
    assert tied.lm_head.weight is tied.shared.weight
    tied_total = count_parameters(tied)[1]
    assert abs(tied_total - 54_400_000) <= 100_000
    assert count_parameters(rut5_model)[1] - tied_total == RUT5_VOCAB * RUT5_D_MODEL


def test_random_rut5_small_is_seeded(rut5_model):
    again = random_rut5_small(seed=0)
    assert torch.equal(again.lm_head.weight, rut5_model.lm_head.weight)
    assert torch.equal(again.shared.weight, rut5_model.shared.weight)


def test_count_parameters_separates_frozen(demo_dir):
    model, _ = load_model_and_tokenizer(str(demo_dir))
    model.shared.requires_grad_(False)
    trainable, total = count_parameters(model)
    assert total - trainable == model.shared.weight.numel()


# Demo model


def test_demo_tokenizer_is_t5_like_and_round_trips_russian(demo_dir):
    _, tokenizer = load_model_and_tokenizer(str(demo_dir))
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    ids = tokenizer(SENTENCE).input_ids
    assert ids[-1] == 1 and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True).split() == SENTENCE.split()
    unseen = "Ёжик съел 42 щавеля: «вкусно»"
    assert tokenizer.decode(tokenizer(unseen).input_ids, skip_special_tokens=True) == unseen


def test_demo_model_trains_with_labels(demo_dir):
    model, tokenizer = load_model_and_tokenizer(str(demo_dir))
    batch = tokenizer(
        [SENTENCE, "Хороший магазин"], text_target=["Спасибо!", "Рекомендую"], padding=True, return_tensors="pt"
    )
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()


def test_demo_model_is_small_and_untied(demo_dir):
    marker = json.loads((demo_dir / DEMO_MARKER).read_text(encoding="utf-8"))
    model, tokenizer = load_model_and_tokenizer(str(demo_dir))
    assert model.config.vocab_size == len(tokenizer) == marker["vocab_size"]
    assert count_parameters(model)[1] == marker["parameters"] < 2_000_000
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()


def test_demo_build_is_reused_without_rewriting(demo_dir):
    weights = demo_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    start = time.perf_counter()
    assert build_demo_model(demo_texts(), demo_dir, seed=0) == demo_dir
    assert time.perf_counter() - start < 1.0
    assert weights.stat().st_mtime_ns == before


def test_demo_build_is_deterministic(demo_dir, tmp_path):
    again = build_demo_model(demo_texts(), tmp_path / "again", seed=0)
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (again / name).read_bytes() == (demo_dir / name).read_bytes(), name


def test_demo_build_changes_with_seed_or_texts(demo_dir, tmp_path):
    output = tmp_path / "model"
    build_demo_model(demo_texts(), output, seed=0)
    build_demo_model(demo_texts(), output, seed=1)
    assert json.loads((output / DEMO_MARKER).read_text(encoding="utf-8"))["seed"] == 1
    assert (output / "model.safetensors").read_bytes() != (demo_dir / "model.safetensors").read_bytes()
    build_demo_model(demo_texts() + ["Новый отзыв про булочную."], output, seed=1)
    assert json.loads((output / DEMO_MARKER).read_text(encoding="utf-8"))["texts"] == len(demo_texts()) + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporaries left beside it


def test_demo_build_refuses_to_overwrite_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ModelSourceError) as exc_info:
        build_demo_model(demo_texts(), tmp_path, seed=0)
    assert "refusing to overwrite" in single_line(exc_info)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"


# Saving and loading


def test_untied_checkpoint_round_trip_keeps_head_separate(demo_dir, tmp_path):
    model, tokenizer = load_model_and_tokenizer(str(demo_dir))
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)  # make sure the head really is saved and loaded on its own
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer.save_pretrained(tmp_path)
    assert not [p.name for p in tmp_path.iterdir() if p.suffix in (".bin", ".pt", ".pth")]
    assert set(load_file(tmp_path / "model.safetensors")) >= {"lm_head.weight", "shared.weight"}

    loaded, _ = load_model_and_tokenizer(str(tmp_path))
    assert loaded.lm_head.weight.data_ptr() != loaded.shared.weight.data_ptr()
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
    assert torch.equal(loaded.shared.weight, model.shared.weight)
    assert loaded.config.scale_decoder_outputs is False


def test_loaded_head_stays_untied_after_resizing(demo_dir):
    model, tokenizer = load_model_and_tokenizer(str(demo_dir))
    model.tie_weights()
    model.resize_token_embeddings(len(tokenizer) + 8)
    assert model.lm_head.weight.data_ptr() != model.shared.weight.data_ptr()
    assert model.lm_head.weight.shape == model.shared.weight.shape


def test_load_rejects_missing_directory(tmp_path):
    with pytest.raises(ModelSourceError) as exc_info:
        load_model_and_tokenizer(str(tmp_path / "absent"))
    assert "model directory not found" in single_line(exc_info)


def test_load_rejects_a_file(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelSourceError) as exc_info:
        load_model_and_tokenizer(str(weights))
    assert "model directory not found" in single_line(exc_info)


def write_config(directory) -> None:
    (directory / "config.json").write_text(rut5_small_config().to_json_string(), encoding="utf-8")


def test_load_refuses_pickle_checkpoint(tmp_path):
    write_config(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelSourceError) as exc_info:
        load_model_and_tokenizer(str(tmp_path))
    message = single_line(exc_info)
    assert "no .safetensors weights" in message and "refused" in message and "safe_serialization=True" in message


def test_load_rejects_config_without_weights(tmp_path):
    write_config(tmp_path)
    with pytest.raises(ModelSourceError) as exc_info:
        load_model_and_tokenizer(str(tmp_path))
    assert "no model weights" in single_line(exc_info)


def test_load_rejects_directory_without_config(tmp_path):
    with pytest.raises(ModelSourceError) as exc_info:
        load_model_and_tokenizer(str(tmp_path))
    assert "no config.json" in single_line(exc_info)


def test_load_reports_broken_weights_in_one_line(demo_dir, tmp_path):
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((demo_dir / name).read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelSourceError) as exc_info:
        load_model_and_tokenizer(str(tmp_path))
    assert "cannot load model from" in single_line(exc_info)


@pytest.mark.parametrize("model_id", [RUT5_SMALL_ID, "reviewkit-tests/no-such-model"])
def test_load_fails_fast_for_hub_id_when_offline(monkeypatch, tmp_path, model_id):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads both settings once, at import; an empty cache keeps the test hermetic.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(ModelSourceError) as exc_info:
        load_model_and_tokenizer(model_id)
    assert time.perf_counter() - start < 10
    message = single_line(exc_info)
    assert f"cannot load model '{model_id}' from the Hugging Face hub (offline?)" in message
    assert "--model_name_or_path" in message and "--demo" in message
