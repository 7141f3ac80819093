"""Full fine-tune of ruT5-small on the cleaned, keyword-enriched reviews (all ratings), 10 epochs.

    python scripts/train_t5.py --demo                     # offline: demo data, tiny model, ~1 min on a CPU
    python scripts/train_t5.py --data_dir data/prepared/full --output_dir outputs/train_t5

Any setting below can be changed on the command line (`--learning_rate 1e-4`), and so can every
flag of transformers' Seq2SeqTrainingArguments (`--help` lists them all).
"""

import sys

from reviewkit.training.recipe import main

EXPERIMENT = "train_t5"
DEFAULTS = dict(
    model_name_or_path="cointegrated/rut5-small",
    output_dir="outputs/train_t5",
    num_train_epochs=10,
    learning_rate=3e-4,
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    max_source_length=64,
    max_target_length=256,
    balance="none",
    seed=42,
)
# The demo model is tiny and random: fewer epochs at a higher learning rate show the loss falling.
DEMO_DEFAULTS = dict(num_train_epochs=6, learning_rate=5e-3, logging_steps=10, output_dir="outputs/demo/train_t5")

if __name__ == "__main__":
    sys.exit(main(EXPERIMENT, __doc__, DEFAULTS, DEMO_DEFAULTS))
