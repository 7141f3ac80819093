"""reviewkit.redact: credentials masked in URIs and free text, including those given through the environment."""

import pytest
from reviewkit import redact as redaction
from reviewkit.redact import mask_uri, redact, remember_secrets


@pytest.mark.parametrize("uri, masked", [
    ("postgresql://mlflow:s3cret@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
    ("postgresql+psycopg://mlflow:p%40ss%2Fw@db/mlflow", "postgresql+psycopg://mlflow:***@db/mlflow"),
    ("mysql+pymysql://root:pw@localhost/optuna", "mysql+pymysql://root:***@localhost/optuna"),
    ("https://user:tok@mlflow.example.com/api?token=abc&x=1#runs", "https://user:***@mlflow.example.com/api?token=***&x=1#runs"),
    ("postgresql://mlflow@db/mlflow?sslmode=require&password=hunter2", "postgresql://mlflow@db/mlflow?sslmode=require&password=***"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("postgresql://mlflow@db:5432/mlflow", "postgresql://mlflow@db:5432/mlflow"),
    ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
    ("postgresql://:only-password@db/x", "postgresql://:***@db/x"),
])
def test_mask_uri_hides_the_password_and_secret_parameters_only(uri, masked):
    assert mask_uri(uri) == masked


def test_redact_masks_uris_inside_text_and_remembered_passwords_anywhere(monkeypatch):
    monkeypatch.setattr(redaction, "_remembered", set())
    remember_secrets("postgresql://mlflow:p%40ss-Word9@db/mlflow")
    text = ('connection to postgresql://mlflow:p%40ss-Word9@db/mlflow failed; the driver said: password "p@ss-Word9" '
            "rejected; dsn host=db password=p@ss-Word9 user=mlflow")
    masked = redact(text)
    assert "p@ss-Word9" not in masked and "p%40ss-Word9" not in masked and "Word9" not in masked
    assert masked.startswith("connection to postgresql://mlflow:***@db/mlflow failed")


def test_redact_masks_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-Abc123-xyz")
    monkeypatch.setenv("HF_TOKEN", "hf_q9wErTy")
    monkeypatch.setenv("PGPASSWORD", "on")  # too short to be told from ordinary words: left alone
    masked = redact("Authorization: Bearer tok-Abc123-xyz; hub hf_q9wErTy; option on")
    assert masked == "Authorization: Bearer ***; hub ***; option on"
