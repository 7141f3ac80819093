"""The review-generation kit behind scripts/*.py, in layers; a layer imports only the layers below it.

common < data < model < tracking < training < evaluation < marking (checked by tests/test_layers.py)
"""
