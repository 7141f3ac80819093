"""The three experiment scripts end to end on the demo, read back from a temporary MLflow store."""

import json
import os
import signal
import time

import mlflow
import pytest
from conftest import DEMO_INPUT, ROOT, SCRIPTS, run_python, script, script_here, seed_mlflow_store, train, train_here
from peft import LoraConfig, TaskType, get_peft_model
from reference import random_rut5_small

from reviewkit.model.modeling import count_parameters
from reviewkit.tracking.conventions import card_description


def kill_in_second_epoch(process, run_dir, after_s):
    """SIGKILL a training process `after_s` seconds after its first complete checkpoint."""
    deadline = time.monotonic() + 300
    while not list(run_dir.glob("checkpoint-*/trainer_state.json")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()[-3000:]
        time.sleep(0.3)
    time.sleep(after_s)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=600)


def only_run(workdir, experiment):
    """The one training run of `experiment` (evaluate.py's nested runs under it aside)."""
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = [run for run in client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
            if "mlflow.parentRunId" not in run.data.tags]
    assert len(runs) == 1
    return client, runs[0]


def history(client, run, name):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)]


@pytest.mark.slow
def test_train_t5_demo_logs_every_epoch_and_the_loss_falls(demo_runs):
    result = demo_runs.result("train_t5")
    assert "trainable parameters: " in result.stdout
    client, run = only_run(demo_runs.root, "train_t5")
    assert run.info.status == "FINISHED"
    eval_loss, train_loss = history(client, run, "eval_loss"), history(client, run, "train_loss")
    assert [s for s, _ in eval_loss] == [1, 2, 3] and [s for s, _ in train_loss] == [1, 2, 3]
    losses = [v for _, v in eval_loss]
    assert losses[0] > losses[1] > losses[2] and losses[2] < 0.7 * losses[0]
    assert len(history(client, run, "loss")) >= 10 and history(client, run, "epoch")[-1][1] == pytest.approx(3, abs=0.05)
    params = run.data.params
    assert params["num_train_epochs"] == "3.0" and params["data_kept"] == "3873" and params["seed"] == "42"
    assert int(params["trainable_parameters"]) == int(params["total_parameters"]) > 0
    output_dir = demo_runs.output_dir("train_t5")
    assert params["output_dir"] == str(output_dir) and params["model_id"]
    tags = run.data.tags
    assert tags["mlflow.source.name"] == "scripts/train_t5.py" and tags["mlflow.source.type"] == "LOCAL"
    assert len(tags["mlflow.source.git.commit"]) == 40 or tags["mlflow.source.git.commit"] == "unknown"
    assert tags["mlflow.user"] and run.info.run_name == "train_t5 · demo · samples 1280 · epochs 3"
    card = (output_dir / "final" / "README.md").read_text(encoding="utf-8")
    assert tags["mlflow.note.content"] == card_description(card) and "## Training result" in card
    assert run.data.metrics["best_epoch"] == 3 and run.data.metrics["best_eval_loss"] == pytest.approx(losses[2])
    assert (output_dir / "demo_data" / "report.json").is_file()  # the demo keeps its data and model here
    assert params["model_id"] == str(output_dir / "demo_model")
    epoch_lines = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(" | ")[0] for line in epoch_lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "by rating 1: " in epoch_lines[0] and "samples/s" in epoch_lines[0] and "{'eval_loss'" not in result.stdout
    assert [s for s, _ in history(client, run, "eval_rating_5_loss")] == [1, 2, 3]
    assert [s for s, _ in history(client, run, "train_tokens_per_second")] == [1, 2, 3]
    final = output_dir / "final"
    assert (final / "model.safetensors").is_file()
    assert not [p for p in final.iterdir() if p.suffix in (".bin", ".pt", ".pth")]


@pytest.mark.slow
def test_runs_show_their_splits_as_datasets_with_a_content_digest(demo_runs):
    """train_t5 and train_lora prepare the same demo data in their own directories: the same datasets in MLflow;
    train_lora_r1's ratings 1-2 are other data."""
    for name in ("train_t5", "train_lora", "train_lora_r1"):
        demo_runs.result(name)
    inputs = {}
    for name in ("train_t5", "train_lora", "train_lora_r1"):
        client, run = only_run(demo_runs.root, name)
        inputs[name] = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
                        for i in client.get_run(run.info.run_id).inputs.dataset_inputs}
        assert set(inputs[name]) == {"training", "validation"}
        assert {d.name for d in inputs[name].values()} == {"demo_data"}
        assert "train.parquet" in inputs[name]["training"].source
    assert {c: d.digest for c, d in inputs["train_t5"].items()} == {c: d.digest for c, d in inputs["train_lora"].items()}
    assert inputs["train_t5"]["training"].digest != inputs["train_lora_r1"]["training"].digest
    assert inputs["train_t5"]["training"].digest != inputs["train_t5"]["validation"].digest


@pytest.mark.slow
def test_train_lora_r1_demo_keeps_the_best_epoch(demo_runs):
    result = demo_runs.result("train_lora_r1")
    client, run = only_run(demo_runs.root, "train_lora_r1")
    eval_loss = history(client, run, "eval_loss")
    assert [s for s, _ in eval_loss] == [1, 2, 3]
    best = min(eval_loss, key=lambda pair: pair[1])[0]
    assert run.data.metrics["best_epoch"] == best
    params = run.data.params
    assert (params["lora_r"], params["lora_alpha"], params["lora_target_modules"]) == ("16", "1", "k,q,v")
    assert params["ratings"] == "1,2" and params["keep_best"] == "True"
    assert int(params["trainable_parameters"]) < int(params["total_parameters"])
    assert (demo_runs.output_dir("train_lora_r1") / "final" / "adapter_model.safetensors").is_file()
    assert f"best epoch {best}" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("mode, logged", [
    ("oversample", "balance_expected_counts_per_epoch"),
    ("weighted", "balance_loss_weights"),
    ("downsample", "balance_counts_after"),
])
def test_balance_modes_train_and_log_their_counts_and_per_rating_validation(tmp_path, mode, logged):
    result = train_here("train_lora_r1.py", tmp_path, "--num_train_epochs", 1, "--balance", mode)
    assert result.returncode == 0, result.stderr[-3000:]
    client, run = only_run(tmp_path, "train_lora_r1")
    params = run.data.params
    before = json.loads(params["balance_counts_before"])
    assert params["balance"] == mode and set(before) == {"1", "2"} and before["1"] > before["2"]
    values = json.loads(params[logged])
    if mode == "oversample":
        assert values["1"] == pytest.approx(values["2"], abs=0.1)
    elif mode == "weighted":
        assert values["2"] > values["1"]
    else:
        assert values == {"1": before["2"], "2": before["2"]}
    for name in ("eval_loss", "eval_rating_1_loss", "eval_rating_2_loss"):
        assert [s for s, _ in history(client, run, name)] == [1], name


def lora_trainable(r, modules):
    model = get_peft_model(random_rut5_small(), LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=r, lora_alpha=1,
                                                           target_modules=modules))
    return count_parameters(model)[0]


def test_lora_parameter_counts_on_the_rut5_small_shape():
    # 8 encoder self-attention + 8 decoder self- and 8 cross-attention blocks = 24 blocks. Each adapted
    # projection d_model=512 -> heads*d_kv=384 (or back) adds r*(512+384) parameters.
    assert lora_trainable(4, ["q", "v"]) == 24 * 2 * 4 * (512 + 384) == 172_032
    assert lora_trainable(16, ["k", "q", "v"]) == 24 * 3 * 16 * (512 + 384) == 1_032_192


def test_fp16_is_refused_with_one_line(tmp_path):
    result = script_here("train_t5.py", "--demo", "--output_dir", tmp_path / "run", "--fp16")
    code, stderr = result.returncode, result.stderr
    assert code == 2 and "fp16 is refused" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("spelling, demo", [
    (["--demo"], True), (["--demo=true"], True), (["--demo", "true"], True), (["--demo", "false"], False)])
def test_the_demo_defaults_follow_the_parsed_demo_value(tmp_path, spelling, demo):
    """The demo's epochs, learning rate and output directory come from the parsed --demo, however it is spelled."""
    import runpy

    from reviewkit.training.config import parse_config

    module = runpy.run_path(str(SCRIPTS / "train_t5.py"), run_name="train_t5")
    data = [] if demo else ["--data_dir", str(tmp_path / "data")]
    config, args = parse_config("t", module["DEFAULTS"], module["DEMO_DEFAULTS"], [*spelling, *data])
    chosen = module["DEMO_DEFAULTS"] if demo else module["DEFAULTS"]
    assert config.demo is demo
    assert (args.num_train_epochs, args.learning_rate, args.output_dir) == (
        chosen["num_train_epochs"], chosen["learning_rate"], chosen["output_dir"])
    assert args.logging_steps == (10 if demo else 50)


def test_help_lists_the_trainer_flags_beside_the_experiment_ones():
    result = script_here("train_t5.py", "--help")
    assert result.returncode == 0
    for flag in ("--gradient_accumulation_steps", "--lr_scheduler_type", "--save_total_limit", "--torch_compile",
                 "--dataloader_num_workers", "--report_to", "--resume_from_checkpoint", "--balance", "--demo"):
        assert flag in result.stdout, flag


@pytest.mark.slow
def test_trainer_flags_change_the_run_and_the_same_seed_gives_the_same_losses(tmp_path):
    quick = ["--num_train_epochs", 1, "--max_train_samples", 256, "--per_device_train_batch_size", 16]
    for name in "abc":
        (tmp_path / name).mkdir()
    first = train_here("train_t5.py", tmp_path / "a", *quick)
    again = train_here("train_t5.py", tmp_path / "b", *quick)
    accumulated = train_here("train_t5.py", tmp_path / "c", *quick, "--gradient_accumulation_steps", 2,
                             "--lr_scheduler_type", "cosine", "--save_total_limit", 1)
    for result in (first, again, accumulated):
        assert result.returncode == 0, result.stderr[-3000:]
    runs = {name: only_run(tmp_path / name, "train_t5") for name in "abc"}
    losses = {name: (history(client, run, "train_loss"), history(client, run, "eval_loss"))
              for name, (client, run) in runs.items()}
    assert losses["a"] == losses["b"]
    assert losses["c"] != losses["a"]
    params = runs["c"][1].data.params
    assert (params["gradient_accumulation_steps"], params["lr_scheduler_type"]) == ("2", "cosine")
    assert runs["a"][1].data.params["gradient_accumulation_steps"] == "1"
    checkpoints = {name: sorted(p.name for p in (tmp_path / name / "run").glob("checkpoint-*")) for name in "ac"}
    assert checkpoints == {"a": ["checkpoint-16"], "c": ["checkpoint-8"]}  # 256 rows / 16, then / (16 x 2)


@pytest.mark.parametrize("name, args, message", [
    ("train_t5.py", ["--no_such_flag"], "unrecognized arguments: --no_such_flag"),
    ("train_t5.py", ["--num_train_epochs", "-1"], "--num_train_epochs must be positive"),
    ("train_t5.py", ["--lr_scheduler_type", "bogus"], "argument --lr_scheduler_type"),
    ("train_t5.py", ["--merge"], "--merge needs --lora"),
    ("train_t5.py", ["--balance", "sideways"], "invalid choice: 'sideways'"),
    ("train_lora.py", ["--lora_r", "0"], "--lora_r must be at least 1"),
    ("train_lora_r1.py", ["--ratings", "0,6"], "ratings must be from 1 to 5"),
    ("train_t5.py", ["--output_dir", "{file}"], "exists and is not a directory"),
    ("train_t5.py", ["--output_dir", "/proc/reviewkit-cannot-write"], "cannot create output directory"),
    ("train_t5.py", ["--tracking_uri", "bogus://x"], "MLflow tracking URI bogus://x cannot be used"),
])
def test_cli_misuse_is_one_line_and_a_nonzero_exit(tmp_path, name, args, message):
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    args = [a.replace("{file}", str(tmp_path / "a_file")) for a in args]
    defaults = {"--output_dir": str(tmp_path / "run"), "--tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    args += [item for flag, value in defaults.items() if flag not in args for item in (flag, value)]
    result = script_here(name, "--demo", *args)
    code, stderr = result.returncode, result.stderr
    assert code != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], stderr[-2000:]
    assert not (tmp_path / "run" / "final").exists()


def test_the_script_itself_gives_the_one_line_error_and_exit_2(tmp_path):
    result = script("train_lora.py", "--demo", "--output_dir", tmp_path / "run", "--lora_r", "0", timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "train_lora.py: error: --lora_r must be at least 1 (see --help)"]


def test_unreachable_tracking_server_fails_before_training(tmp_path):
    started = time.monotonic()
    result = script_here("train_t5.py", "--demo", "--output_dir", tmp_path / "run", "--tracking_uri",
                         "http://127.0.0.1:9")
    code, stderr = result.returncode, result.stderr
    assert code == 1 and time.monotonic() - started < 45  # no minutes of HTTP retries
    assert "http://127.0.0.1:9" in stderr and "unreachable" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "run").exists()


def test_one_quick_demo_epoch_end_to_end(tmp_path):
    """The fast loop's whole path: demo data and model under the run, training, MLflow, epoch line, model card."""
    checkout_outputs = ROOT / "outputs"
    before = sorted(checkout_outputs.rglob("*")) if checkout_outputs.exists() else None
    result = train("train_t5.py", tmp_path, "--num_train_epochs", 1, "--max_train_samples", 64, new_store=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (sorted(checkout_outputs.rglob("*")) if checkout_outputs.exists() else None) == before  # untouched
    run_dir = tmp_path / "run"
    assert (run_dir / "demo_data" / "report.json").is_file() and (run_dir / "demo_model" / "config.json").is_file()
    (epoch_line,) = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert epoch_line.startswith("epoch 1/1 | train_loss ") and " | eval_loss " in epoch_line
    client, run = only_run(tmp_path, "train_t5")
    assert run.info.status == "FINISHED" and [s for s, _ in history(client, run, "eval_loss")] == [1]
    assert run.data.params["max_train_samples"] == "64" and run.data.params["train_rows_used"] == "64"
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    card = (run_dir / "final" / "README.md").read_text(encoding="utf-8")
    assert f"{summary['best_eval_loss']:.4f}" in card and summary["run_id"] == run.info.run_id


@pytest.mark.slow
def test_offline_hub_model_id_is_one_line_naming_the_way_out(tmp_path):
    from reviewkit.data.pipeline import PrepareConfig, prepare_dataset

    prepare_dataset(str(DEMO_INPUT), tmp_path / "data", PrepareConfig(), progress=False)
    result = script_here("train_t5.py", "--data_dir", tmp_path / "data", "--output_dir", tmp_path / "run",
                         "--tracking_uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--model_name_or_path" in result.stderr and "--demo" in result.stderr


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_resumes_into_the_same_run_and_a_finished_rerun_adds_nothing(tmp_path):
    epochs, args = 3, ["--max_train_samples", 1280, "--logging_steps", 5]  # 40 steps, ~10 s an epoch on a core
    process = train("train_t5.py", tmp_path, "--num_train_epochs", epochs, *args, wait=False)
    run_dir = tmp_path / "run"
    kill_in_second_epoch(process, run_dir, after_s=3)
    assert len(list(run_dir.glob("checkpoint-*"))) == 1
    result = train_here("train_t5.py", tmp_path, "--num_train_epochs", epochs, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stdout
    client, run = only_run(tmp_path, "train_t5")
    assert [s for s, _ in history(client, run, "eval_loss")] == list(range(1, epochs + 1))
    assert [s for s, _ in history(client, run, "train_loss")] == list(range(1, epochs + 1))
    steps = [s for s, _ in history(client, run, "loss")]
    assert steps == sorted(set(steps))
    assert run.info.status == "FINISHED"
    again = train_here("train_t5.py", tmp_path, "--num_train_epochs", epochs, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    client, rerun = only_run(tmp_path, "train_t5")
    assert rerun.info.run_id == run.info.run_id and rerun.info.status == "FINISHED"
    for name in ("eval_loss", "train_loss", "loss", "epoch", "best_epoch", "best_eval_loss"):
        assert history(client, rerun, name) == history(client, run, name), f"a finished rerun logged {name} again"
    assert len(history(client, rerun, "best_epoch")) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name, epochs, kill_at, data", [
    ("train_lora_r1.py", 3, "train:25", []),  # step 25 of 17 per epoch: the middle of the second epoch
    ("train_lora_r1.py", 3, "evaluate:2", []),
    ("train_t5.py", 2, "save:1", ["--max_train_samples", 640]),
])
def test_killed_run_resumes_into_the_same_run_with_every_epoch_once(tmp_path, name, epochs, kill_at, data):
    """SIGKILL mid-epoch, during validation, or half-way through writing a checkpoint; then the same command.

    A kill from outside at a moment the test does not choose is the sigkill test above.
    """
    run_dir = tmp_path / "run"
    process = train(name, tmp_path, "--num_train_epochs", epochs, *data, env={"REVIEWKIT_TEST_KILL_AT": kill_at},
                    wait=False)
    process.wait(timeout=600)
    assert process.returncode == -signal.SIGKILL
    checkpoints = sorted(run_dir.glob("checkpoint-*"), key=lambda d: int(d.name.split("-")[1]))
    if kill_at == "save:1":  # the weights are written, the trainer state is not
        assert len(checkpoints) == 1 and (checkpoints[0] / "model.safetensors").is_file()
        assert not (checkpoints[0] / "trainer_state.json").exists()
    else:
        assert len(checkpoints) == 1 and (checkpoints[0] / "trainer_state.json").is_file()
    result = train_here(name, tmp_path, "--num_train_epochs", epochs, *data)
    assert result.returncode == 0, result.stderr[-3000:]
    if kill_at == "save:1":
        assert "its save was interrupted" in result.stdout and "resuming from" not in result.stdout
    else:
        assert f"resuming from {checkpoints[0]}" in result.stdout
    client, run = only_run(tmp_path, name.removesuffix(".py"))
    assert run.info.status == "FINISHED"
    for name in ("eval_loss", "train_loss"):
        assert [s for s, _ in history(client, run, name)] == list(range(1, epochs + 1)), name
    steps = [s for s, _ in history(client, run, "loss")]
    assert steps == sorted(set(steps))
    summary = (run_dir / "summary.json").read_text(encoding="utf-8")
    assert f'"{epochs}":' in summary and f'"{epochs + 1}":' not in summary
    assert list((run_dir / "final").glob("*.safetensors"))


@pytest.mark.slow
def test_peak_memory_stays_flat_over_many_epochs(tmp_path):
    epochs = 20  # of 2 steps each: a leak per step, evaluation or epoch end still adds up over 20 epochs
    result = train("train_lora_r1.py", tmp_path, "--num_train_epochs", epochs, "--max_train_samples", 64)
    assert result.returncode == 0, result.stderr[-3000:]
    client, run = only_run(tmp_path, "train_lora_r1")
    peaks = dict(history(client, run, "peak_rss_mib"))
    assert sorted(peaks) == list(range(1, epochs + 1))
    print(f"peak RSS by epoch, MiB: {', '.join(f'{e}: {v:.0f}' for e, v in sorted(peaks.items()))}")
    # After warm-up (allocator pools, the first evaluations) the peak may creep, not grow with the epochs:
    # the second half of the run adds under 2 %.
    half = peaks[epochs // 2]
    assert peaks[epochs] - half < 0.02 * half, peaks


@pytest.mark.slow
def test_torchrun_two_cpu_processes_log_one_run(tmp_path):
    seed_mlflow_store(tmp_path / "mlflow.db")
    batches = tmp_path / "batches"
    batches.mkdir()
    result = run_python("-m", "torch.distributed.run", "--nproc_per_node", "2", SCRIPTS / "train_t5.py", "--demo",
                        "--num_train_epochs", "2", "--max_train_samples", "640", "--output_dir", tmp_path / "run",
                        "--tracking_uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                        env={"REVIEWKIT_TEST_RECORD_BATCHES": str(batches)})
    assert result.returncode == 0, result.stderr[-3000:]
    # Both ranks walk one length-grouped order and each trains on its own share: every epoch covers the 640
    # examples once between them (up to the last batch's padding), each rank about half of them.
    for epoch in (0, 1):
        per_rank = [[tuple(example) for line in (batches / f"rank-{rank}.jsonl").read_text().splitlines()
                     for example in json.loads(line)["examples"] if json.loads(line)["epoch"] == epoch]
                    for rank in (0, 1)]
        assert len(set(per_rank[0]) | set(per_rank[1])) == 640
        assert all(300 <= len(examples) <= 352 for examples in per_rank)
    assert result.stdout.count("best epoch") == 1
    client, run = only_run(tmp_path, "train_t5")
    assert run.data.params["world_size"] == "2"
    assert [s for s, _ in history(client, run, "eval_loss")] == [1, 2]


@pytest.mark.slow
def test_non_finite_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    from reviewkit.model.modeling import load_model_and_tokenizer

    data = ["--max_train_samples", 640]  # 20 steps an epoch
    result = train("train_t5.py", tmp_path, "--num_train_epochs", 2, *data, env={"REVIEWKIT_TEST_NAN_AT_STEP": "30"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "training loss became nan or inf at step 30" in error_lines[0]
    checkpoints = sorted((tmp_path / "run").glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == ["checkpoint-20"]
    model, _ = load_model_and_tokenizer(str(checkpoints[0]))
    assert model is not None
    client, run = only_run(tmp_path, "train_t5")
    assert run.info.status == "FAILED"
    resumed = train_here("train_t5.py", tmp_path, "--num_train_epochs", 2, *data)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    client, run = only_run(tmp_path, "train_t5")
    assert [s for s, _ in history(client, run, "eval_loss")] == [1, 2] and run.info.status == "FINISHED"


@pytest.mark.slow
def test_lora_saves_its_adapter_and_a_merged_standalone_model(demo_runs):
    from reviewkit.model.modeling import load_model_and_tokenizer

    demo_runs.result("train_lora")
    output_dir = demo_runs.output_dir("train_lora")
    assert (output_dir / "final" / "adapter_model.safetensors").is_file()
    model, tokenizer = load_model_and_tokenizer(str(output_dir / "merged"))
    assert not any("lora" in name for name, _ in model.named_parameters())
    client, run = only_run(demo_runs.root, "train_lora")
    assert (run.data.params["lora_r"], run.data.params["lora_target_modules"]) == ("4", "q,v")
