"""MLflow tracking: the tracking store, the UI's run conventions, the client layer every tool writes through
(experiment, run, params), the durable queue of metric values, the best epoch and the logger of a training run."""
