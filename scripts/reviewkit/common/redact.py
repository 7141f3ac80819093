"""Credentials never leave the process: masking of URIs and of any text before it is logged, printed or stored.

`mask_uri` hides the password of `scheme://user:password@host` and the values of secret query
parameters (`?password=`, `&token=`, ...): `postgresql://mlflow:***@db:5432/mlflow`. `redact`
does the same to every URI inside a free text (an exception's message, a log line, a file) and
also replaces the literal values of the credentials given through the environment
(MLFLOW_TRACKING_PASSWORD, PGPASSWORD, HF_TOKEN, ...) and of every password `remember_secrets`
has seen in a URI, wherever they appear: a driver's message may quote a password without its URI.

The rules, which err on the side of masking too much:
- The password runs from the first `:` after the user to the LAST `@`: the host part has no `@`,
  while SQLAlchemy and libpq take raw `/ : ? # @` and spaces in a password. An `@` later in the
  path or query makes everything up to it masked, unless a secret query parameter comes first
  (`db:5432/x?password=p@ss` is a host, a port and a secret value). `scheme//user:password@` and
  `scheme:/user:password@` (a URI missing a character, which a tool may take for a file path and
  quote in an error) are masked the same way.
- A secret query value (also a libpq `password=...` in free text) runs to the next `&` or the end:
  `,` `)` `#` `;` `=` are part of it. A value in quotes ends at its closing quote.
- In free text a URI ends at whitespace; when a quote, backtick or bracket (`"` `'` `` ` `` `(`
  `<`) stands right before it, at the last matching closing character before that whitespace,
  so that `` `uri` `` in a Markdown table cell and `"uri"` in JSON keep their closing character.
  A password with a raw space is therefore cut in free text: only `mask_uri` (a whole URI) and the
  remembered literal catch it there.
- A remembered password is masked raw, percent-encoded (either case of hex, a space also as `+`)
  and in any mix of the two, and so is each of its pieces between `@ / ? # : & = ; ,` of at least
  MIN_LITERAL_LENGTH characters: a parser that stops at one of them (SQLAlchemy at the first `@`,
  urllib at the first `/`, a query parser at `&` and `=`, libpq's host list at `,`) takes the rest
  for the host, port, path or a parameter and may quote it in an error.
"""

from __future__ import annotations

import functools
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

_SCHEME = r"\b[A-Za-z][A-Za-z0-9+.\-]*(?::/{1,2}|//)"
_SECRET_KEY = "(?:" + "|".join(re.escape(key) for key in SECRET_KEYS) + r")\s*=\s*"
_QUOTED = r"\"[^\"\n]*\"|'[^'\n]*'"
_USERINFO = re.compile(rf"(?P<head>{_SCHEME}[^:/?#\s]*):(?P<password>(?:(?![?&;]{_SECRET_KEY}).)*)@", re.IGNORECASE)
_PARAMETER = re.compile(rf"(?P<head>(?:^|[?&;]){_SECRET_KEY})(?P<value>(?:{_QUOTED})(?=&|$)|[^&]*)",
                        re.IGNORECASE)
# What free text is masked in: a URI, or a secret key=value, up to whitespace, with the character just before it.
_SPAN = re.compile(rf"(?P<opener>[\"'`(<]?)(?P<span>{_SCHEME}\S*|(?<![\w.]){_SECRET_KEY}(?:{_QUOTED})?\S*)",
                   re.IGNORECASE)
_CLOSERS = {'"': '"', "'": "'", "`": "`", "(": ")", "<": ">"}
# Where a parser may cut a password short, quoting the rest as host, port, path or parameter.
_PIECE_DELIMITERS = re.compile(r"[@/?#:&=;,]")

_remembered: set[str] = set()


def mask_uri(uri: str | None) -> str | None:
    """The URI with its password and secret query values replaced by ***; None stays None."""
    if uri is None:
        return None
    return _mask_uri_parts(str(uri))


def remember_secrets(uri: str | None) -> None:
    """Keep the password and secret query values of URI, so that `redact` masks them in any text later."""
    if not uri:
        return
    secrets = [match.group("value").strip("\"'") for match in _PARAMETER.finditer(uri)]
    userinfo = _USERINFO.search(uri)
    if userinfo:
        secrets.append(userinfo.group("password"))
    for secret in secrets:
        for decoded in {urllib.parse.unquote(secret), urllib.parse.unquote_plus(secret)}:
            _remember(decoded)


def redact(text) -> str:
    """TEXT (any object, as str) with every credential this module knows of replaced by ***."""
    text = _SPAN.sub(_mask_span, str(text))
    literals = _literal_pattern(frozenset(_literal_secrets()))
    return literals.sub(MASK, text) if literals else text


def _mask_uri_parts(uri: str) -> str:
    uri = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@" if m.group("password") else m.group(0), uri, count=1)
    return _PARAMETER.sub(lambda m: m.group("head") + MASK, uri)


def _mask_span(match: re.Match) -> str:
    opener, span = match.group("opener"), match.group("span")
    end = span.rfind(_CLOSERS[opener]) if opener else -1
    inner, tail = (span, "") if end < 0 else (span[:end], span[end:])
    return opener + _mask_uri_parts(inner) + tail


def _remember(secret: str) -> None:
    if secret and secret != MASK:
        _remembered.add(secret)
        _remembered.update(piece for piece in _PIECE_DELIMITERS.split(secret) if piece)


def _literal_secrets() -> set[str]:
    secrets = set(_remembered) | {os.environ[name] for name in SECRET_ENV_VARS if os.environ.get(name)}
    return {secret for secret in secrets if len(secret) >= MIN_LITERAL_LENGTH}


@functools.lru_cache(maxsize=16)
def _literal_pattern(secrets: frozenset[str]) -> re.Pattern | None:
    # Longest first: a secret that contains another one is masked whole.
    spellings = [_spellings(secret) for secret in sorted(secrets, key=len, reverse=True)]
    return re.compile("|".join(spellings)) if spellings else None


def _spellings(secret: str) -> str:
    """A pattern of SECRET with each character raw or percent-encoded, as URIs carry it and drivers quote it."""
    return "".join(_character_spellings(character) for character in secret)


def _character_spellings(character: str) -> str:
    encoded = "".join(f"%{byte:02X}" for byte in character.encode("utf-8"))
    forms = [re.escape(character), f"(?i:{re.escape(encoded)})", *([r"\+"] if character == " " else [])]
    return "(?:" + "|".join(forms) + ")"
