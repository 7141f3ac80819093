"""reviewkit.common.redact: credentials masked in URIs and free text, including those given through the environment."""

import urllib.parse

import pytest
from reviewkit.common import redact as redaction
from reviewkit.common.redact import mask_uri, redact, remember_secrets

# Two distinctive pieces around each character that is hard for a URI parser or a masker.
HARD_CHARACTERS = list("/@:%,)(?#&=+;") + [" "]
FRONT, BACK = "Kq4vZ", "Wm8xT"
DATABASE = "postgresql://mlflow:{}@db.example:5432/reviews?sslmode=require&application_name=kit"
DATABASE_MASKED = "postgresql://mlflow:***@db.example:5432/reviews?sslmode=require&application_name=kit"
QUERY = "https://mlflow.example:5000/api/2.0?x=1&{key}={}&y=2"
QUERY_MASKED = "https://mlflow.example:5000/api/2.0?x=1&{key}=***&y=2"


@pytest.fixture(autouse=True)
def nothing_remembered(monkeypatch):
    monkeypatch.setattr(redaction, "_remembered", set())


def spellings(character: str) -> dict[str, str]:
    """The password with CHARACTER in the middle, as a URI may carry it: raw and percent-encoded."""
    password = FRONT + character + BACK
    return {"raw": password, "encoded": urllib.parse.quote(password, safe="")}


def assert_hidden(text: str, character: str) -> None:
    password = FRONT + character + BACK
    for secret in (password, urllib.parse.quote(password, safe=""), FRONT, BACK):
        assert secret not in text, f"{secret!r} left in {text!r}"


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
    # A URI missing a character: a tool may take it for a file path and quote it in an error.
    ("postgresql//mlflow:pw/zq89x@db/mlflow", "postgresql//mlflow:***@db/mlflow"),
    ("postgresql:/mlflow:pw/zq89x@db/mlflow", "postgresql:/mlflow:***@db/mlflow"),
    # An Azure-style user with an `@` of its own.
    ("postgresql://mlflow@server:pw@server.example/mlflow", "postgresql://mlflow@server:***@server.example/mlflow"),
    # An `@` in a secret query value is not taken for the end of a password.
    ("postgresql://db:5432/mlflow?user=mlflow&password=p@ss", "postgresql://db:5432/mlflow?user=mlflow&password=***"),
])
def test_mask_uri_hides_the_password_and_secret_parameters_only(uri, masked):
    assert mask_uri(uri) == masked


@pytest.mark.parametrize("character", HARD_CHARACTERS)
@pytest.mark.parametrize("form", ["raw", "encoded"])
def test_the_whole_userinfo_password_is_masked_up_to_the_last_at(character, form):
    masked = mask_uri(DATABASE.format(spellings(character)[form]))
    assert masked == DATABASE_MASKED
    assert_hidden(masked, character)


@pytest.mark.parametrize("character", HARD_CHARACTERS)
@pytest.mark.parametrize("form", ["raw", "encoded"])
@pytest.mark.parametrize("key", ["password", "token"])
def test_a_secret_query_value_is_masked_up_to_the_next_ampersand(character, form, key):
    if character == "&" and form == "raw":
        pytest.skip("a raw `&` ends a query value for every parser: such a password cannot be given raw there")
    masked = mask_uri(QUERY.format(spellings(character)[form], key=key))
    assert masked == QUERY_MASKED.format(key=key)
    assert_hidden(masked, character)


@pytest.mark.parametrize("character", [c for c in HARD_CHARACTERS if c != " "])
@pytest.mark.parametrize("form", ["raw", "encoded"])
def test_a_uri_in_an_error_message_and_in_a_markdown_cell_is_masked_without_being_remembered(character, form):
    uri = DATABASE.format(spellings(character)[form])
    message = redact(f"(psycopg.OperationalError) connection to {uri} failed: timeout expired")
    assert message == f"(psycopg.OperationalError) connection to {DATABASE_MASKED} failed: timeout expired"
    cell = redact(f"| tracking_uri | `{uri}` |\n| seed | `42` |")
    assert cell == f"| tracking_uri | `{DATABASE_MASKED}` |\n| seed | `42` |"
    for text in (message, cell):
        assert_hidden(text, character)
    if character == "&" and form == "raw":
        return  # a raw `&` ends a query value for every parser
    query = redact(f"see `{QUERY.format(spellings(character)[form], key='token')}` | next")
    assert query == f"see `{QUERY_MASKED.format(key='token')}` | next"
    assert_hidden(query, character)


@pytest.mark.parametrize("character", HARD_CHARACTERS)
def test_a_remembered_password_is_masked_in_any_spelling_anywhere(character):
    remember_secrets(DATABASE.format(spellings(character)["encoded"]))
    password = FRONT + character + BACK
    encoded = urllib.parse.quote(password, safe="")
    texts = [f'password "{password}" rejected', f"dsn={encoded}", f"lower hex {encoded.lower()}",
             f"plus for space {urllib.parse.quote_plus(password)}", f"{DATABASE.format(password)} is down",
             f"`{DATABASE.format(password)}`"]
    for text in texts:
        assert_hidden(redact(text), character)


def test_a_space_in_a_password_ends_a_uri_in_free_text_so_only_the_remembered_literal_masks_it_there():
    uri = DATABASE.format(FRONT + " " + BACK)
    assert mask_uri(uri) == DATABASE_MASKED
    remember_secrets(uri)
    assert redact(f"connection to {uri} failed") == f"connection to {DATABASE_MASKED} failed"
    assert redact(f"| `{uri}` |") == f"| `{DATABASE_MASKED}` |"


def test_the_pieces_a_parser_cuts_a_password_into_are_masked_too():
    """SQLAlchemy ends the password at its first raw `@`, urllib the netloc at the first `/`: the rest shows as host."""
    remember_secrets(f"postgresql://mlflow:{FRONT}@{BACK}/Jx5pR@db.example/reviews")
    message = redact(f'could not translate host name "{BACK}" to address; port Jx5pR; database at {FRONT}:5432')
    assert message == 'could not translate host name "***" to address; port ***; database at ***:5432'


def test_what_is_not_a_secret_stays_after_a_password_is_remembered():
    remember_secrets("postgresql://mlflow:x7/Qz9kLm@db.example:5432/reviews?sslmode=require&token=ab")
    text = "user mlflow, host db.example, port 5432, database reviews, sslmode=require, a token ab"
    assert redact(text) == text  # `ab` is too short to be replaced as a literal


def test_a_journal_path_made_of_a_uri_missing_its_colon_is_masked():
    uri = f"postgresql//mlflow:{FRONT}/{BACK}@127.0.0.1:5432/optuna"
    remember_secrets(uri)
    parent = "postgresql/mlflow:{}/{}@127.0.0.1:5432".format(FRONT, BACK)  # what Path(uri).parent shows
    message = redact(f"--storage {uri}: the directory {parent} does not exist")
    assert message == ("--storage postgresql//mlflow:***@127.0.0.1:5432/optuna: "
                       "the directory postgresql/mlflow:***@127.0.0.1:5432 does not exist")


@pytest.mark.parametrize("text, masked", [
    ("error (see https://h.example/x?token=abc)def) and more", "error (see https://h.example/x?token=*** and more"),
    ("[run](https://h.example/x?token=abc) next", "[run](https://h.example/x?token=***) next"),
    ('{"tracking_uri": "postgresql://u:p\\"w@db/x", "run_id": "r1"}', '{"tracking_uri": "postgresql://u:***@db/x", '
                                                                      '"run_id": "r1"}'),
    ("dsn host=db password=p@ss,w)rd user=mlflow", "dsn host=db password=*** user=mlflow"),
    ('dsn host=db password="two words" user=mlflow', "dsn host=db password=*** user=mlflow"),
    ("--password=hunter2 --token=s3cr3t", "--password=*** --token=***"),
])
def test_free_text_keeps_what_surrounds_a_secret(text, masked):
    assert redact(text) == masked


def test_redact_masks_uris_inside_text_and_remembered_passwords_anywhere():
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
