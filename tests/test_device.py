"""Where generation runs: --device of generate.py, sample.py and evaluate.py, and $REVIEWKIT_DEVICE of the served model.

This machine may have no GPU: CUDA is mocked through torch.cuda's own functions.
"""

import contextlib
import json
import re
from types import SimpleNamespace

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import DEMO_INPUT, read_reviews, script_here, seed_mlflow_store

from reviewkit.common.errors import DeviceError
from reviewkit.data.prompt import build_prompt
from reviewkit.marking.sample_file import Entry, parse_sample
from reviewkit.model.device import GenerationDevice, resolve_device
from reviewkit.model.generation import SamplingSettings, generate_reviews, load_for_generation
from reviewkit.model.mlflow_model import DEVICE_VARIABLE, ReviewModel, save_review_model, served_device

CPU_FP32 = re.compile(r"cpu \(fp32, [0-9]+ threads?\)")


def mock_cuda(monkeypatch, names: list[str] | None, bf16: set[int] = frozenset()):
    """CUDA with one GPU per name (None: no CUDA); `bf16`: the indices of the GPUs that support it natively."""
    current = {"index": 0}

    @contextlib.contextmanager
    def device(index):
        current["index"], previous = index, current["index"]
        yield
        current["index"] = previous

    monkeypatch.setattr(torch.cuda, "is_available", lambda: names is not None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(names or []))
    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: current["index"] in bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: names[index])


def test_auto_is_the_cpu_in_fp32_without_cuda(monkeypatch):
    mock_cuda(monkeypatch, None)
    chosen = resolve_device("auto")
    assert chosen.device == torch.device("cpu") and chosen.dtype == torch.float32
    assert chosen.label == "cpu (fp32)" and CPU_FP32.fullmatch(chosen.description)


@pytest.mark.parametrize("bf16, dtype, label", [({0}, torch.bfloat16, "cuda:0 (NVIDIA H200, bf16)"),
                                                (set(), torch.float32, "cuda:0 (NVIDIA H200, fp32)")])
def test_auto_and_cuda_are_the_first_gpu_in_bf16_where_it_supports_it(monkeypatch, bf16, dtype, label):
    mock_cuda(monkeypatch, ["NVIDIA H200"], bf16)
    for choice in ("auto", "cuda", "cuda:0"):
        chosen = resolve_device(choice)
        assert chosen.device == torch.device("cuda", 0) and chosen.dtype == dtype
        assert chosen.label == chosen.description == label


def test_the_bf16_support_of_the_chosen_gpu_decides(monkeypatch):
    mock_cuda(monkeypatch, ["NVIDIA A100", "Tesla V100"], bf16={0})
    assert resolve_device("cuda:1").label == "cuda:1 (Tesla V100, fp32)"
    assert resolve_device("cuda:0").label == "cuda:0 (NVIDIA A100, bf16)"


def test_cpu_stays_the_cpu_when_there_is_a_gpu(monkeypatch):
    mock_cuda(monkeypatch, ["NVIDIA H200"], {0})
    assert resolve_device("cpu") == GenerationDevice(torch.device("cpu"), torch.float32)


@pytest.mark.parametrize("names, choice, message", [
    (None, "cuda", "device cuda requested, but CUDA is not available here"),
    (None, "cuda:0", "device cuda:0 requested, but CUDA is not available here"),
    (["NVIDIA H200"], "cuda:1", "device cuda:1 requested, but this machine has 1 CUDA device(s): cuda:0 to cuda:0"),
])
def test_an_absent_gpu_is_one_line(monkeypatch, names, choice, message):
    mock_cuda(monkeypatch, names)
    with pytest.raises(DeviceError) as raised:
        resolve_device(choice)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


SCRIPT_ARGS = {  # nothing here exists: a check that came after loading would fail on the model instead
    "generate.py": ["--model", "/no/such/model", "--rating", 5],
    "sample.py": ["--model", "/no/such/model", "--data_dir", "/no/such/data", "--output", "{tmp}/s.txt"],
    "evaluate.py": ["--model", "/no/such/model", "--data_dir", "/no/such/data", "--tracking_uri",
                    "sqlite:///{tmp}/mlflow.db"],
}


def script_args(name: str, tmp_path) -> list[str]:
    return [str(arg).replace("{tmp}", str(tmp_path)) for arg in SCRIPT_ARGS[name]]


@pytest.mark.parametrize("name", list(SCRIPT_ARGS))
@pytest.mark.parametrize("names, choice", [(None, "cuda"), (["NVIDIA H200"], "cuda:1")])
def test_a_requested_absent_gpu_stops_the_script_with_one_line_before_loading(monkeypatch, tmp_path, name, names,
                                                                              choice):
    mock_cuda(monkeypatch, names)
    result = script_here(name, *script_args(name, tmp_path), "--device", choice)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: device {choice} requested, but ")
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("name", list(SCRIPT_ARGS))
@pytest.mark.parametrize("value", ["gpu", "cuda:x", "cuda:-1", "cuda:", "CUDA", ""])
def test_an_invalid_device_is_a_usage_error(tmp_path, name, value):
    result = script_here(name, *script_args(name, tmp_path), "--device", value)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{name}: error: argument --device: expected auto, cpu, cuda or cuda:N")
    assert repr(value) in result.stderr


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained tiny demo model, a LoRA adapter on it, and prepared-like train/test splits."""
    from peft import LoraConfig, get_peft_model

    from reviewkit.training.demo import build_demo_model

    root = tmp_path_factory.mktemp("tiny")
    reviews = [r.fields for r, _ in zip(read_reviews(str(DEMO_INPUT)), range(300))]
    model_dir = build_demo_model([r["text"] for r in reviews], root / "model", seed=0)
    base, _ = load_for_generation(str(model_dir), None, resolve_device("cpu"))
    get_peft_model(base, LoraConfig(r=2, target_modules=["q", "v"], task_type="SEQ_2_SEQ_LM")).save_pretrained(
        root / "adapter")
    (root / "data").mkdir()
    for split, rows in (("train", reviews[:200]), ("test", reviews[200:])):
        pq.write_table(pa.table({"text": [r["text"] for r in rows], "rating": [int(float(r["rating"])) for r in rows],
                                 "rubrics": [r["rubrics"] for r in rows],
                                 "keywords": pa.array([["кофе"]] * len(rows), pa.list_(pa.string()))}),
                       root / "data" / f"{split}.parquet")
    return SimpleNamespace(model=model_dir, adapter=root / "adapter", data=root / "data")


def parameters_of(model) -> set[tuple[torch.device, torch.dtype]]:
    return {(p.device, p.dtype) for p in model.parameters()}


def test_the_model_is_on_the_resolved_device_after_loading(monkeypatch, tiny):
    mock_cuda(monkeypatch, None)
    model, _ = load_for_generation(str(tiny.model), None, resolve_device("auto"))
    assert parameters_of(model) == {(torch.device("cpu"), torch.float32)}
    # The dtype is applied too, to an adapter's weights as to its base's (bf16 exists on the CPU as well).
    bf16 = GenerationDevice(torch.device("cpu"), torch.bfloat16)
    model, _ = load_for_generation(str(tiny.adapter), str(tiny.model), bf16)
    assert parameters_of(model) == {(torch.device("cpu"), torch.bfloat16)}
    assert any("lora_" in name for name, _ in model.named_parameters())


def test_the_same_seed_gives_the_same_reviews_on_the_cpu(tiny):
    model, tokenizer = load_for_generation(str(tiny.model), None, resolve_device("cpu"))
    prompts = [build_prompt(5, "Кафе", "кофе, десерт"), build_prompt(1, "Аптека", "очередь")]

    def reviews(seed: int) -> list[list[str]]:
        return generate_reviews(model, tokenizer, prompts, SamplingSettings(num_return_sequences=3, max_new_tokens=8,
                                                                            seed=seed), batch_size=2)

    first = reviews(3)
    assert reviews(3) == first and reviews(4) != first


def test_generate_says_where_it_generates_on_stderr(monkeypatch, tiny):
    mock_cuda(monkeypatch, None)
    result = script_here("generate.py", "--model", tiny.model, "--rating", 5, "--max_new_tokens", 4)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("generating on ")]
    assert CPU_FP32.fullmatch(line.removeprefix("generating on "))
    assert result.stdout.startswith("рейтинг: 5")  # stdout stays the reviews


def test_sample_records_the_device_in_its_header_and_key(tiny, tmp_path):
    output = tmp_path / "s.txt"
    one = script_here("sample.py", "--model", tiny.model, "--data_dir", tiny.data, "--num_prompts", 3, "--max_new_tokens", 4,
                      "--device", "cpu", "--output", output)
    assert one.returncode == 0, one.stderr[-3000:]
    assert CPU_FP32.fullmatch(one.stdout.splitlines()[0].removeprefix("generating on "))
    text = output.read_text(encoding="utf-8")
    assert "\n# Device: cpu (fp32)\n" in text
    assert len([e for e in parse_sample(text) if isinstance(e, Entry)]) == 3  # the strict reader skips it
    several = script_here("sample.py", "--model", tiny.model, "--model", tiny.adapter, "--base_model", tiny.model,
                          "--label", "a", "--label", "b", "--data_dir", tiny.data, "--num_prompts", 2, "--max_new_tokens", 4,
                          "--device", "cpu", "--output", output)
    assert several.returncode == 0, several.stderr[-3000:]
    assert "\n# Device: cpu (fp32)\n" in output.read_text(encoding="utf-8")
    assert json.loads((tmp_path / "s.key.json").read_text(encoding="utf-8"))["device"] == "cpu (fp32)"


def test_evaluate_logs_the_device_to_mlflow_and_the_model_card(tiny, tmp_path, monkeypatch):
    mock_cuda(monkeypatch, None)
    seed_mlflow_store(tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = script_here("evaluate.py", "--model", tiny.model, "--data_dir", tiny.data, "--num_prompts", 20,
                         "--max_new_tokens", 4, "--tracking_uri", uri)
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("generating 20 reviews on ")]
    described = line.removeprefix("generating 20 reviews on ")
    assert CPU_FP32.fullmatch(described)
    run_id = re.search(r"logged to MLflow run (\w+)", result.stdout).group(1)
    assert mlflow.MlflowClient(uri).get_run(run_id).data.params["device"] == described
    assert f"- device: `{described}`" in (tiny.model / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("value, label", [(None, "cpu (fp32)"), ("", "cpu (fp32)"), ("auto", "cpu (fp32)"),
                                          ("cpu", "cpu (fp32)")])
def test_the_served_model_follows_the_environment_variable(monkeypatch, tiny, value, label):
    mock_cuda(monkeypatch, None)
    if value is None:
        monkeypatch.delenv(DEVICE_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(DEVICE_VARIABLE, value)
    assert served_device().label == label
    served = ReviewModel()
    served.load_context(SimpleNamespace(artifacts={"model": str(tiny.model)}))
    assert parameters_of(served.model) == {(torch.device("cpu"), torch.float32)}


def test_the_served_model_on_a_gpu_by_default_where_there_is_one(monkeypatch):
    mock_cuda(monkeypatch, ["NVIDIA H200"], {0})
    monkeypatch.delenv(DEVICE_VARIABLE, raising=False)
    assert served_device().label == "cuda:0 (NVIDIA H200, bf16)"


@pytest.mark.parametrize("value, message", [
    ("gpu", "REVIEWKIT_DEVICE=gpu: expected auto, cpu, cuda or cuda:N (N a GPU number from 0), got 'gpu'"),
    ("cuda", "REVIEWKIT_DEVICE=cuda: device cuda requested, but CUDA is not available here"),
])
def test_a_bad_served_device_fails_the_load_with_one_line_before_loading(monkeypatch, value, message):
    mock_cuda(monkeypatch, None)
    monkeypatch.setenv(DEVICE_VARIABLE, value)
    with pytest.raises(DeviceError) as raised:  # not ModelSourceError: the model path does not exist
        ReviewModel().load_context(SimpleNamespace(artifacts={"model": "/no/such/model"}))
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_mlflow_loads_the_saved_model_where_the_variable_says(monkeypatch, tiny, tmp_path):
    mock_cuda(monkeypatch, None)
    save_review_model(tmp_path / "pyfunc", tiny.model, None)
    monkeypatch.setenv(DEVICE_VARIABLE, "cuda:x")
    with pytest.raises(DeviceError, match="^REVIEWKIT_DEVICE=cuda:x: expected auto, cpu, cuda or cuda:N"):
        mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    monkeypatch.setenv(DEVICE_VARIABLE, "cpu")
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    assert parameters_of(loaded.unwrap_python_model().model) == {(torch.device("cpu"), torch.float32)}
