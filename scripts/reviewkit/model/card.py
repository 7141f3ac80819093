"""A Hugging Face model card (README.md) beside a trained model, and its evaluation section.

`write_model_card` is called by training after the final model is saved: YAML front matter in
the Hub's convention, then the base model, the data and its cleaning report, the
hyper-parameters, the validation loss per epoch and how to load the model and generate.
`add_evaluation_to_card` is called by evaluate.py: it puts the measures under one
"## Evaluation" heading, replacing the section of an earlier evaluation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from ..common.files import atomic_write_text
from ..common.markdown import markdown_table
from ..common.redact import redact
from ..data.prompt import build_prompt
from .generation import SamplingSettings

CARD_NAME = "README.md"
EVALUATION_HEADING = "## Evaluation"
HUB_DATASETS = {"geo-reviews-dataset-2023": "d0rj/geo-reviews-dataset-2023"}
BASE_TAGS = ("t5", "review-generation", "russian")
EXAMPLE_PROMPT = build_prompt(5, "Кафе;Кофейня", ["кофе", "десерт"])


def write_model_card(model_dir: Path, summary: dict, params: dict, report: dict) -> Path:
    """Write model_dir/README.md from a training summary, the run's MLflow params and the data's report.json."""
    model_dir = Path(model_dir)
    adapter = _is_adapter(model_dir, params)
    base = str(summary.get("model_name_or_path") or params.get("model_id") or "")
    datasets = sorted({hub_id for name, hub_id in HUB_DATASETS.items() if name in str(report.get("input", ""))})
    tags = [*BASE_TAGS, *(["lora"] if adapter else []), *(["demo"] if summary.get("demo") else [])]
    card_data = ModelCardData(language="ru", library_name="peft" if adapter else "transformers",
                              base_model=base if _is_hub_id(base) else None, datasets=datasets or None, tags=tags,
                              pipeline_tag="text2text-generation")
    title = f"# {summary.get('experiment', 'review generator')}: reviews of organizations from a rating and keywords"
    sections = [title, _base_model_section(summary, params, adapter), _data_section(report),
                _hyperparameter_section(params), _training_result_section(summary),
                _usage_section(model_dir, adapter)]
    path = model_dir / CARD_NAME
    atomic_write_text(path, redact(_card_text(card_data, "\n\n".join(sections))))
    return path


def add_evaluation_to_card(model_dir: Path, markdown_table: str, settings: dict) -> None:
    """Put (or replace) the card's "## Evaluation" section; a directory without a card gets a minimal one."""
    model_dir = Path(model_dir)
    path = model_dir / CARD_NAME
    text = path.read_text(encoding="utf-8") if path.is_file() else _minimal_card(model_dir)
    section = "\n".join([
        EVALUATION_HEADING, "",
        "Measured by `scripts/evaluate.py` per requested rating on test prompts. Realism is the cross-validated "
        "ROC AUC of a classifier telling the generated reviews from the real ones of the same prompts (1.0: always "
        "told apart); the control is the same classifier on two halves of real test reviews (control_n each), "
        "what indistinguishable texts give at this sample size: read realism against it rather than against 0.5.",
        "",
        markdown_table.strip(), "",
        "Settings:", "",
        *(f"- {key}: `{value}`" for key, value in settings.items()),
    ]) + "\n"
    earlier = re.search(rf"^{re.escape(EVALUATION_HEADING)}\n.*?(?=^## |\Z)", text, re.S | re.M)
    if earlier:
        rest = text[earlier.end():]
        text = text[:earlier.start()] + section + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    atomic_write_text(path, redact(text))


def _card_text(card_data: ModelCardData, body: str) -> str:
    return str(ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body.rstrip()}\n"))


def _is_adapter(model_dir: Path, params: dict) -> bool:
    return (model_dir / "adapter_config.json").is_file() or params.get("lora_r") not in (None, "", "None")


def _is_hub_id(name: str) -> bool:
    """`owner/name` that is not a local path: the only kind of base model the Hub's metadata can link."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", name)) and not Path(name).exists()


def _table(header: tuple[str, ...], rows) -> str:
    return markdown_table(header, rows)


def _base_model_section(summary: dict, params: dict, adapter: bool) -> str:
    base = summary.get("model_name_or_path") or params.get("model_id", "?")
    if summary.get("demo"):
        kind = "the offline demo's tiny, randomly initialised T5 (built from the demo data), not ruT5-small"
    else:
        kind = "a T5 sequence-to-sequence model"
    if adapter:
        method = (f"a LoRA adapter (r={params.get('lora_r')}, alpha={params.get('lora_alpha')}, dropout="
                  f"{params.get('lora_dropout')}, on {params.get('lora_target_modules')}); load it on top of the base")
    else:
        method = "a full fine-tune: every weight was trained"
    trainable, total = summary.get("trainable_parameters"), summary.get("total_parameters")
    counts = f"{trainable:,} of {total:,} parameters trained." if trainable is not None and total else ""
    return f"## Base model\n\n`{base}`: {kind}. This model is {method}. {counts}".rstrip()


def _data_section(report: dict) -> str:
    read, kept = report.get("read", 0), report.get("kept", 0)
    lines = ["## Data", "",
             f"Reviews from `{report.get('input', '?')}` ({report.get('format', '?')}), cleaned by "
             "`scripts/prepare_data.py`; the prompt is the rating, the rubrics and TF-IDF keywords of the review.", "",
             _table(("", "reviews", "share of read"),
                    [("read", read, "100%"), ("kept", kept, f"{kept / read:.1%}" if read else "—")]
                    + [(f"dropped: {reason}", count, f"{count / read:.1%}" if read else "—")
                       for reason, count in report.get("dropped", {}).items()]), ""]
    splits = report.get("splits", {})
    split_rows = [(name, info.get("rows"), info.get("organizations", "—"),
                   *(info.get("ratings", {}).get(str(r), "—") for r in range(1, 6))) for name, info in splits.items()]
    lines.append(_table(("split", "rows", "organizations", "★1", "★2", "★3", "★4", "★5"), split_rows))
    settings = report.get("settings")
    if settings:
        lines += ["", f"Preparation settings: `{json.dumps(settings, ensure_ascii=False, sort_keys=True)}`."]
    return "\n".join(lines)


def _hyperparameter_section(params: dict) -> str:
    shown = sorted((key, value) for key, value in params.items() if not key.startswith("data_"))
    table = _table(("parameter", "value"), [(key, f"`{value}`") for key, value in shown])
    return f"## Training hyper-parameters\n\nThe MLflow parameters of the training run:\n\n{table}"


def _training_result_section(summary: dict) -> str:
    losses = sorted((int(epoch), float(loss)) for epoch, loss in summary.get("eval_loss", {}).items())
    best, kept = summary.get("best_epoch"), summary.get("kept_epoch")
    rows = [(epoch, f"{loss:.4f}", " ".join(note for flag, note in ((epoch == best, "best"), (epoch == kept, "saved"))
                                            if flag)) for epoch, loss in losses]
    best_loss = summary.get("best_eval_loss")
    lines = ["## Training result", "",
             f"Best epoch {best} (validation loss {best_loss:.4f}); the saved model is the one of epoch {kept}."
             if best_loss is not None else f"Best epoch {best}; the saved model is the one of epoch {kept}.", "",
             _table(("epoch", "validation loss (cross-entropy, nats/token)", ""), rows)]
    if summary.get("run_id"):
        lines += ["", f"MLflow: experiment `{summary.get('experiment')}`, run `{summary['run_id']}` "
                      f"(tracking URI `{summary.get('tracking_uri')}`)."]
    return "\n".join(lines)


def _usage_section(model_dir: Path, adapter: bool) -> str:
    settings = SamplingSettings()
    loader = ("from peft import AutoPeftModelForSeq2SeqLM\nfrom transformers import AutoTokenizer\n\n"
              f"model = AutoPeftModelForSeq2SeqLM.from_pretrained(\"{model_dir}\")  # loads the base model too\n"
              if adapter else
              "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
              f"model = AutoModelForSeq2SeqLM.from_pretrained(\"{model_dir}\")\n")
    code = (f"{loader}tokenizer = AutoTokenizer.from_pretrained(\"{model_dir}\")\n"
            f"inputs = tokenizer(\"{EXAMPLE_PROMPT}\", return_tensors=\"pt\")\n"
            f"output = model.generate(**inputs, do_sample=True, temperature={settings.temperature}, "
            f"top_p={settings.top_p}, top_k={settings.top_k},\n"
            f"                        no_repeat_ngram_size={settings.no_repeat_ngram_size}, "
            f"max_new_tokens={settings.max_new_tokens})\n"
            "print(tokenizer.decode(output[0], skip_special_tokens=True))")
    return "\n".join([
        "## How to use", "",
        "The prompt is `рейтинг: R | рубрики: R1; R2 | ключевые слова: K1, K2` "
        "(`reviewkit.data.prompt.build_prompt`):", "",
        "```python", code, "```", "",
        "Or with this project's command line:", "",
        "```bash",
        f"python scripts/generate.py --model {model_dir} --rating 5 --rubrics \"Кафе;Кофейня\" "
        "--keywords \"кофе, десерт\"",
        "```"])


def _minimal_card(model_dir: Path) -> str:
    """A card for a model trained without one (before cards existed): front matter and a title only."""
    adapter_config = model_dir / "adapter_config.json"
    base = ""
    if adapter_config.is_file():
        base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path") or ""
    card_data = ModelCardData(language="ru", library_name="peft" if adapter_config.is_file() else "transformers",
                              base_model=base if _is_hub_id(base) else None, tags=list(BASE_TAGS),
                              pipeline_tag="text2text-generation")
    body = (f"# {model_dir.resolve().parent.name}/{model_dir.name}: reviews of organizations\n\n"
            "This model was saved without a training summary; only its evaluation is recorded here.")
    return _card_text(card_data, body)
