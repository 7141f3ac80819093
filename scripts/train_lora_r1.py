"""LoRA on ruT5-small over ratings 1 and 2 only: r=16, alpha=1, dropout=0.01 on k,q,v; 12 epochs; the best epoch is kept.

    python scripts/train_lora_r1.py --demo
    python scripts/prepare_data.py --input geo-reviews-dataset-2023.tskv --ratings 1,2 --output_dir data/prepared/ratings_1_2
    python scripts/train_lora_r1.py --data_dir data/prepared/ratings_1_2 --output_dir outputs/train_lora_r1 --merge

Any setting below can be changed on the command line, and so can every flag of transformers'
Seq2SeqTrainingArguments (`--help` lists them all).
"""

import sys

from reviewkit.training.recipe import main

EXPERIMENT = "train_lora_r1"
DEFAULTS = dict(
    model_name_or_path="cointegrated/rut5-small",
    output_dir="outputs/train_lora_r1",
    num_train_epochs=12,
    learning_rate=1e-3,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    max_source_length=64,
    max_target_length=256,
    lora=True,
    lora_r=16,
    lora_alpha=1,
    lora_dropout=0.01,
    lora_target_modules="k,q,v",
    ratings="1,2",
    keep_best=True,
    balance="none",
    seed=42,
)
# alpha/r = 1/16 scales the adapter down: the random demo model needs a large step to move.
DEMO_DEFAULTS = dict(num_train_epochs=6, learning_rate=5e-2, logging_steps=5, output_dir="outputs/demo/train_lora_r1")

if __name__ == "__main__":
    sys.exit(main(EXPERIMENT, __doc__, DEFAULTS, DEMO_DEFAULTS))
