#!/usr/bin/env bash
# The GPU measurements of docs/performance.md in one run (on one H200: minutes, the real-size epoch last):
# bench_train.py at batch 32 and 64, the project's setup with and without --torch_compile;
# batched generation and evaluate.py end to end on the GPU (bf16 where it supports it); the served model under
# load (bench_serve.py); bench_scale.py.
# Usage: bash benchmarks/gpu_check.sh   (after: pip install -r requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for batch in 32 64; do
  python benchmarks/bench_train.py --batch_size "$batch" --examples $((batch * 160)) --warmup_steps 10 \
    --skip_max_padding
done
python benchmarks/bench_train.py --batch_size 64 --examples $((64 * 160)) --warmup_steps 20 --skip_max_padding \
  --project_flags --torch_compile true
for batch in 128 256; do  # the larger batches a GPU default could take
  python benchmarks/bench_train.py --batch_size "$batch" --examples $((batch * 80)) --warmup_steps 10 \
    --skip_max_padding
done

# Generation: reviews/s at batch 64 and 256, 48 and 128 new tokens; the one-at-a-time baseline on 8 prompts.
for tokens in 48 128; do
  python benchmarks/bench_generate.py --device cuda --prompts 1024 --batch_sizes 64,256 --max_new_tokens "$tokens"
done
# evaluate.py end to end on 500 prompts (random ruT5-small, the demo data; the model stays for the check below).
python benchmarks/bench_evaluate.py --num_prompts 500 --device auto
# The same seed twice on the GPU gives the same reviews.
seeded=(python scripts/generate.py --model outputs/bench_evaluate/model --rating 4 --rubrics "Кафе" \
  --keywords "кофе, десерт" --num_return_sequences 4 --max_new_tokens 32 --seed 7 --device cuda)
first=$("${seeded[@]}")
second=$("${seeded[@]}")
if [[ "$first" == "$second" ]]; then
  echo "same seed on the GPU: same reviews"
else
  echo "same seed on the GPU: DIFFERENT reviews"
fi

# The served model on the GPU under load: `mlflow models serve` of the demo model and of ruT5-small's shape,
# 1/4/16 clients of 1 and 16 records.
python benchmarks/bench_serve.py --device cuda --requests 8 --max_new_tokens 128

# train_t5.py's code path at the real size (500,000 synthetic rows, ~447k training examples): tokenising, time to
# the first step, the sampler per epoch, validation per 1,000 rows, then one whole epoch (the longest part: minutes).
python benchmarks/bench_scale.py --full_epoch
