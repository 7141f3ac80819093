"""The model: building and loading the T5, the device, generating reviews, the model card, the MLflow pyfunc."""
