"""Reviews/s of batched against one-at-a-time generation on the ruT5-small-shaped model, in one run.

    python benchmarks/bench_generate.py                       # CPU: ~3 min
    python benchmarks/bench_generate.py --batch_sizes 16,32,64,128
    python benchmarks/bench_generate.py --device cuda --prompts 1024 --batch_sizes 64,256 --max_new_tokens 128

Both paths call reviewkit.model.generation.generate_reviews with the same prompts and settings; only
--batch_size differs (batches are formed from prompts of similar length). The model is random
(ruT5-small shape, 64.6M parameters), so it almost never emits </s> and every review runs to
--max_new_tokens: both paths generate the same number of tokens. Prompts are real demo prompts,
tokenised by the demo tokenizer (its ids are a subset of the model's vocabulary). The model runs
where the scripts' --device puts it (reviewkit.model.device: bf16 on a GPU that supports it, else fp32),
after one small untimed batch that pays for the device's start-up.
Target: >= 10x.
"""

from __future__ import annotations

import argparse
import time

import pyarrow.parquet as pq
from project_path import PROJECT_ROOT
from reference import random_rut5_small

from reviewkit.common.errors import DeviceError
from reviewkit.data.pipeline import PrepareConfig, prepare_dataset
from reviewkit.model.device import CHOICES_HELP, device_choice, resolve_device
from reviewkit.model.generation import SamplingSettings, generate_reviews
from reviewkit.model.modeling import load_model_and_tokenizer
from reviewkit.training.demo import build_demo_model

WORK_DIR = PROJECT_ROOT / "outputs" / "bench_generate"


def reviews_per_second(model, tokenizer, prompts, settings, batch_size) -> float:
    started = time.perf_counter()
    generate_reviews(model, tokenizer, prompts, settings, batch_size)
    return len(prompts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=128, help="prompts generated in batches")
    parser.add_argument("--single_prompts", type=int, default=8, help="prompts generated one at a time")
    parser.add_argument("--batch_sizes", default="32,64,128", help="batch sizes to measure, comma-separated")
    parser.add_argument("--max_new_tokens", type=int, default=48, help="tokens per review")
    parser.add_argument("--device", type=device_choice, default="auto",
                        help=f"where the model generates: {CHOICES_HELP}")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except DeviceError as exc:
        parser.error(str(exc))

    data_dir = WORK_DIR / "data"
    prepare_dataset(str(PROJECT_ROOT / "data" / "demo_reviews.tskv"), data_dir, PrepareConfig(), progress=False)
    table = pq.read_table(data_dir / "train.parquet", columns=["prompt", "text"])
    prompts = table.column("prompt").to_pylist()[: args.prompts]
    tokenizer_dir = build_demo_model(table.column("text").to_pylist() + table.column("prompt").to_pylist(),
                                     WORK_DIR / "tokenizer")
    _, tokenizer = load_model_and_tokenizer(str(tokenizer_dir))
    model = random_rut5_small().to(device.device, device.dtype).eval()
    settings = SamplingSettings(max_new_tokens=args.max_new_tokens)
    print(f"device: {device.description}; {args.max_new_tokens} new tokens per review")
    generate_reviews(model, tokenizer, prompts[:8], SamplingSettings(max_new_tokens=4), 8)  # warm-up, untimed

    single = reviews_per_second(model, tokenizer, prompts[: args.single_prompts], settings, 1)
    print(f"one at a time: {single:.2f} reviews/s ({args.single_prompts} prompts)")
    best = 0.0
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        rate = reviews_per_second(model, tokenizer, prompts, settings, batch_size)
        best = max(best, rate)
        print(f"batched, batch {batch_size}: {rate:.2f} reviews/s ({len(prompts)} prompts), {rate / single:.1f}x")
    print(f"ratio (best batch / one at a time): {best / single:.1f}x")


if __name__ == "__main__":
    main()
