"""One training run and its parts: settings, rating balance, samplers, trainer, console, checkpoints, the demo.

Also the Optuna helpers of the hyper-parameter search (tune_lora.py), which runs training runs as its trials.
"""
