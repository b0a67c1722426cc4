"""core.errors: an error described never shows a secret, for every DSN form libpq accepts."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from fortress.core.errors import Secret, database, describe, endpoint, scrub

PASSWORD = "S3CRET-pw"
DSNS = [
    f"postgresql://app:{PASSWORD}@db.example:5432/ledger",
    f"postgres://app:{PASSWORD}@h1:5432,h2:5433/ledger?sslmode=verify-full",
    f"postgresql://app@127.0.0.1:1/db?password={PASSWORD}",
    f"postgresql://app@127.0.0.1:1/db?sslmode=require&password={PASSWORD}&application_name=x",
    f"host=10.0.0.1 port=5432 password={PASSWORD} dbname=db user=app",
    f"host=10.0.0.1 password='{PASSWORD} with space' dbname=db",
    f"postgresql://app:{PASSWORD.replace('-', '%2D')}@db/ledger",
]


@pytest.mark.parametrize("dsn", DSNS)
def test_a_known_secret_is_named_never_shown(dsn: str) -> None:
    password = f"{PASSWORD} with space" if "with space" in dsn else PASSWORD
    secret = Secret.of(dsn, "shop", "ledger-db", "dsn")
    error = OSError(f"could not connect to {dsn}: password {password} refused")
    text = describe(error, [secret])
    assert PASSWORD not in text and PASSWORD.replace("-", "%2D") not in text
    assert "<Secret shop/ledger-db key dsn>" in text
    assert text.startswith("OSError: ")


def test_hosts_and_ports_of_a_known_secret_stay_readable() -> None:
    secret = Secret.of(DSNS[1], "shop", "ledger-db", "dsn")
    text = describe(OSError("h1:5432 and h2:5433 refused; 5432 keys"), [secret])
    assert text == "OSError: h1:5432 and h2:5433 refused; 5432 keys"
    raw = Secret.of("postgresql://app:p@ss:w0rd@db:5432/x", "shop", "db", "dsn")
    assert describe(OSError("p@ss:w0rd rejected at db:5432"), [raw]) == "OSError: *** rejected at db:5432"


@pytest.mark.parametrize("dsn", DSNS)
def test_an_unknown_dsn_is_scrubbed_by_shape(dsn: str) -> None:
    text = scrub(f"connection to {dsn} failed")
    assert PASSWORD not in text and PASSWORD.replace("-", "%2D") not in text.replace("***", "")


def test_tokens_and_json_secrets_are_scrubbed() -> None:
    text = scrub('Authorization: Bearer abcdefghijkl; {"password": "hunter22", "token": "t0k3n"}')
    assert "abcdefghijkl" not in text and "hunter22" not in text and "t0k3n" not in text


def test_an_api_error_gives_the_servers_message_only() -> None:
    error = ApiException(status=422, reason="Unprocessable Entity")
    error.body = json.dumps({"kind": "Status", "message": "spec.replicas: must be >= 0"})
    assert describe(error) == "HTTP 422: spec.replicas: must be >= 0"


def test_plain_errors_keep_their_type_and_message_on_one_line() -> None:
    assert describe(ValueError("bad\n  input")) == "ValueError: bad input"
    assert describe(TimeoutError()) == "TimeoutError"
    assert len(describe(RuntimeError("x" * 5000))) == 1000


@pytest.mark.parametrize(
    ("dsn", "where"),
    [
        (DSNS[0], "db.example:5432/ledger"),
        (DSNS[1], "h1:5432,h2:5433/ledger"),
        (DSNS[2], "127.0.0.1:1/db"),
        (DSNS[4], "10.0.0.1:5432/db"),
        ("postgresql:///ledger?host=/run/postgresql", "/run/postgresql/ledger"),
    ],
)
def test_endpoint_says_where_without_credentials(dsn: str, where: str) -> None:
    assert endpoint(dsn) == where


def test_database_names_the_secret_and_where_it_points() -> None:
    secret = Secret.of(DSNS[0], "shop", "ledger-db", "dsn")
    assert database(DSNS[0], secret) == "<Secret shop/ledger-db key dsn> (db.example:5432/ledger)"
    assert database(None, secret) == "<Secret shop/ledger-db key dsn>"
