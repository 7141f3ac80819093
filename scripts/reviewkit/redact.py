"""Credentials never leave the process: masking of URIs and of any text before it is logged, printed or stored.

`mask_uri` hides the password of `scheme://user:password@host` and the values of secret query
parameters (`?password=`, `&token=`, ...): `postgresql://mlflow:***@db:5432/mlflow`. `redact`
does the same to every URI inside a free text (an exception's message, a log line, a file) and
also replaces the literal values of the credentials given through the environment
(MLFLOW_TRACKING_PASSWORD, PGPASSWORD, HF_TOKEN, ...) and of every password `remember_secrets`
has seen in a URI, wherever they appear: a driver's message may quote a password without its URI.
"""

from __future__ import annotations

import os
import re
import urllib.parse

MASK = "***"
SECRET_ENV_VARS = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PGPASSWORD", "HF_TOKEN",
                   "HUGGING_FACE_HUB_TOKEN", "DATABRICKS_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AZURE_STORAGE_ACCESS_KEY", "MYSQL_PWD")
SECRET_KEYS = ("password", "passwd", "pwd", "pass", "token", "access_token", "auth_token", "secret",
               "client_secret", "api_key", "apikey", "access_key", "secret_key", "sig", "signature",
               "x-amz-signature", "x-amz-security-token", "sslpassword")
# A value shorter than this is not replaced as a literal: "1" or "on" would mask unrelated text.
MIN_LITERAL_LENGTH = 4

_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):(?P<password>[^@\s/]*)@")
_SECRET_PARAMETER = re.compile(
    r"(?P<head>(?:^|[?&;\s\"'(,])(?:" + "|".join(re.escape(key) for key in SECRET_KEYS) + r")\s*=\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^&;\s\"'#),]+)", re.IGNORECASE)

_remembered: set[str] = set()


def mask_uri(uri: str | None) -> str | None:
    """The URI with its password and secret query values replaced by ***; None stays None."""
    if uri is None:
        return None
    return _mask_patterns(str(uri))


def remember_secrets(uri: str | None) -> None:
    """Keep the password and secret query values of URI, so that `redact` masks them in any text later."""
    if not uri:
        return
    for match in _USERINFO.finditer(uri):
        _remember(match.group("password"))
    for match in _SECRET_PARAMETER.finditer(uri):
        _remember(match.group("value").strip("\"'"))


def redact(text) -> str:
    """TEXT (any object, as str) with every credential this module knows of replaced by ***."""
    text = _mask_patterns(str(text))
    for secret in sorted(_literal_secrets(), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _mask_patterns(text: str) -> str:
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@" if m.group("password") else m.group(0), text)
    return _SECRET_PARAMETER.sub(lambda m: m.group("head") + MASK, text)


def _remember(secret: str) -> None:
    if secret and secret != MASK:
        _remembered.add(secret)


def _literal_secrets() -> set[str]:
    secrets = set(_remembered) | {os.environ[name] for name in SECRET_ENV_VARS if os.environ.get(name)}
    # The same secret as a URI carries it (percent-encoded) and as a driver reports it (decoded).
    variants = {form for secret in secrets for form in (secret, urllib.parse.unquote(secret),
                                                       urllib.parse.quote(secret, safe=""))}
    return {secret for secret in variants if len(secret) >= MIN_LITERAL_LENGTH}
