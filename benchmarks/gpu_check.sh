#!/usr/bin/env bash
# The GPU measurements of docs/performance.md in one short run (a few minutes on one H200):
# bench_train.py at batch 32 and 64, the project's setup with and without --torch_compile.
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
