"""MLflow tracking: the tracking store, the UI's run conventions and the logger of a training run."""
