"""LoRA on ruT5-small over the whole dataset: r=4, alpha=16, dropout=0.01 on q,v; base weights frozen; 15 epochs.

    python scripts/train_lora.py --demo
    python scripts/train_lora.py --data_dir data/prepared/full --output_dir outputs/train_lora --merge

Any setting below can be changed on the command line, and so can every flag of transformers'
Seq2SeqTrainingArguments (`--help` lists them all).
"""

import sys

from reviewkit.training.recipe import main

EXPERIMENT = "train_lora"
DEFAULTS = dict(
    model_name_or_path="cointegrated/rut5-small",
    output_dir="outputs/train_lora",
    num_train_epochs=15,
    learning_rate=1e-3,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    max_source_length=64,
    max_target_length=256,
    lora=True,
    lora_r=4,
    lora_alpha=16,
    lora_dropout=0.01,
    lora_target_modules="q,v",
    balance="none",
    seed=42,
)
DEMO_DEFAULTS = dict(num_train_epochs=4, learning_rate=2e-2, logging_steps=10, output_dir="outputs/demo/train_lora")

if __name__ == "__main__":
    sys.exit(main(EXPERIMENT, __doc__, DEFAULTS, DEMO_DEFAULTS))
