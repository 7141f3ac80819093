"""Model cards (reviewkit.model.card): the figures of the training summary and data report, and one Evaluation."""

import json
import re

import pytest
from conftest import DEMO_INPUT
from huggingface_hub import ModelCard

from reviewkit.common.redact import mask_uri
from reviewkit.data.pipeline import PrepareConfig, prepare_dataset
from reviewkit.model.card import CARD_NAME, add_evaluation_to_card, write_model_card

SUMMARY = {"experiment": "train_t5", "run_id": "0123456789abcdef", "tracking_uri": "sqlite:///mlflow.db",
           "model_name_or_path": "cointegrated/rut5-small", "demo": False, "data_dir": "data/prepared/full",
           "eval_loss": {"1": 3.2171, "2": 2.9054, "3": 2.8868, "4": 2.9012}, "best_epoch": 3,
           "best_eval_loss": 2.8868, "kept_epoch": 4, "final_dir": "outputs/train_t5/final",
           "trainable_parameters": 64_623_616, "total_parameters": 64_623_616}
PARAMS = {"learning_rate": 3e-4, "num_train_epochs": 4, "per_device_train_batch_size": 32, "seed": 42,
          "model_id": "cointegrated/rut5-small", "balance": "none", "data_read": 4000}
LORA_PARAMS = {**PARAMS, "lora_r": "16", "lora_alpha": "32", "lora_dropout": "0.05", "lora_target_modules": "k,q,v"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The real report.json of the demo data, as prepare_data.py writes it."""
    output = tmp_path_factory.mktemp("prepared")
    prepare_dataset(str(DEMO_INPUT), output, PrepareConfig(), progress=False)
    return json.loads((output / "report.json").read_text(encoding="utf-8"))


def section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"the card has no section {heading!r}"
    return match.group(1)


def table_rows(text: str) -> dict[str, list[str]]:
    """{first cell: the other cells} of the markdown table rows in `text` (header and rule included)."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]
    return {row[0]: row[1:] for row in rows}


def test_the_card_carries_the_summary_report_and_params(tmp_path, report):
    path = write_model_card(tmp_path, SUMMARY, PARAMS, report)
    assert path == tmp_path / CARD_NAME
    card = ModelCard.load(path)
    assert card.data.language == "ru" and card.data.library_name == "transformers"
    assert card.data.base_model == "cointegrated/rut5-small" and card.data.pipeline_tag == "text2text-generation"
    assert "lora" not in card.data.tags and card.data.get("datasets") is None  # demo data: no Hub dataset
    text = card.text

    epochs = table_rows(section(text, "Training result"))
    losses = {int(epoch): float(cells[0]) for epoch, cells in epochs.items() if epoch.isdigit()}
    assert losses == {int(e): pytest.approx(v, abs=5e-5) for e, v in SUMMARY["eval_loss"].items()}
    assert [e for e, cells in epochs.items() if "best" in cells[1]] == [str(SUMMARY["best_epoch"])]
    assert [e for e, cells in epochs.items() if "saved" in cells[1]] == [str(SUMMARY["kept_epoch"])]
    assert f"Best epoch {SUMMARY['best_epoch']} (validation loss {SUMMARY['best_eval_loss']:.4f})" in text
    assert SUMMARY["run_id"] in section(text, "Training result")
    assert f"{SUMMARY['trainable_parameters']:,} of {SUMMARY['total_parameters']:,}" in section(text, "Base model")

    data = table_rows(section(text, "Data"))
    assert int(data["read"][0]) == report["read"] and int(data["kept"][0]) == report["kept"]
    assert {reason: int(data[f"dropped: {reason}"][0]) for reason in report["dropped"]} == report["dropped"]
    for split, info in report["splits"].items():
        assert int(data[split][0]) == info["rows"]
        assert [int(c) for c in data[split][2:7]] == [info["ratings"][str(r)] for r in range(1, 6)]

    hyper = table_rows(section(text, "Training hyper-parameters"))
    assert {key: hyper[key][0].strip("`") for key in PARAMS if not key.startswith("data_")} == \
        {key: str(value) for key, value in PARAMS.items() if not key.startswith("data_")}
    assert "data_read" not in hyper  # shown with the data instead
    assert "AutoModelForSeq2SeqLM.from_pretrained" in section(text, "How to use")


def test_an_adapter_card_is_a_peft_card_and_a_local_base_is_not_claimed_on_the_hub(tmp_path, report):
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "/tmp/demo_model"}', encoding="utf-8")
    demo = {**SUMMARY, "model_name_or_path": str(tmp_path), "demo": True}
    card = ModelCard.load(write_model_card(tmp_path, demo, LORA_PARAMS, report))
    assert card.data.library_name == "peft" and "lora" in card.data.tags and "demo" in card.data.tags
    assert card.data.get("base_model") is None
    base = section(card.text, "Base model")
    assert "r=16, alpha=32" in base and "k,q,v" in base and "demo" in base
    assert "AutoPeftModelForSeq2SeqLM" in section(card.text, "How to use")


def test_the_full_dataset_is_named_by_its_hub_id(tmp_path, report):
    full = {**report, "input": "/data/geo-reviews-dataset-2023.tskv"}
    card = ModelCard.load(write_model_card(tmp_path, SUMMARY, PARAMS, full))
    assert card.data.datasets == ["d0rj/geo-reviews-dataset-2023"]


def test_a_masked_tracking_uri_keeps_the_cards_markdown_intact(tmp_path, report):
    """As training writes it: the URI masked in the params and the summary, then the whole card redacted again."""
    shown = mask_uri("postgresql://mlflow:pw/Zx8q@db:5432/mlflow?sslmode=require&password=p)w,d")
    assert shown == "postgresql://mlflow:***@db:5432/mlflow?sslmode=require&password=***"
    path = write_model_card(tmp_path, {**SUMMARY, "tracking_uri": shown}, {**PARAMS, "tracking_uri": shown}, report)
    text = path.read_text(encoding="utf-8")
    assert table_rows(section(text, "Training hyper-parameters"))["tracking_uri"] == [f"`{shown}`"]
    assert f"(tracking URI `{shown}`)." in section(text, "Training result")


def test_evaluating_twice_leaves_one_evaluation_section_with_the_latest_table(tmp_path, report):
    path = write_model_card(tmp_path, SUMMARY, PARAMS, report)
    original = path.read_text(encoding="utf-8")
    add_evaluation_to_card(tmp_path, "| rating | n |\n|---|---|\n| all | 30 |", {"num_prompts": 30})
    add_evaluation_to_card(tmp_path, "| rating | n |\n|---|---|\n| all | 200 |", {"num_prompts": 200, "seed": 7})
    text = path.read_text(encoding="utf-8")
    assert text.count("## Evaluation") == 1
    evaluation = section(text, "Evaluation")
    assert table_rows(evaluation)["all"] == ["200"] and "- num_prompts: `200`" in evaluation and "`7`" in evaluation
    assert "| all | 30 |" not in text
    assert text.startswith(original.rstrip("\n"))  # the rest of the card is untouched


def test_an_evaluation_before_another_section_is_replaced_in_place(tmp_path, report):
    path = write_model_card(tmp_path, SUMMARY, PARAMS, report)
    add_evaluation_to_card(tmp_path, "| rating | n |\n|---|---|\n| all | 30 |", {})
    path.write_text(path.read_text(encoding="utf-8") + "\n## License\n\nMIT\n", encoding="utf-8")
    add_evaluation_to_card(tmp_path, "| rating | n |\n|---|---|\n| all | 50 |", {})
    text = path.read_text(encoding="utf-8")
    assert text.count("## Evaluation") == 1 and "| all | 50 |" in text and "| all | 30 |" not in text
    assert text.endswith("## License\n\nMIT\n") and text.index("## Evaluation") < text.index("## License")


def test_a_model_without_a_card_gets_a_minimal_one(tmp_path):
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "cointegrated/rut5-small"}',
                                                  encoding="utf-8")
    add_evaluation_to_card(tmp_path, "| rating | n |\n|---|---|\n| all | 30 |", {"num_prompts": 30})
    card = ModelCard.load(tmp_path / CARD_NAME)
    assert card.data.language == "ru" and card.data.library_name == "peft"
    assert card.data.base_model == "cointegrated/rut5-small"
    assert table_rows(section(card.text, "Evaluation"))["all"] == ["30"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["adapter_config.json", CARD_NAME])  # no temporary
