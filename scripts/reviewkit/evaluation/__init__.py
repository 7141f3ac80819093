"""Automatic evaluation of generated reviews and the figures of runs.

The measures, the rating classifier and the copy check with their per-data cache, realism, evaluate.py's MLflow run.
"""
