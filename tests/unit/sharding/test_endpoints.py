"""A shard's endpoint names its DSNs by their Secrets in messages, never shows them (pure)."""

from __future__ import annotations

import pytest

from fortress.core.errors import Secret
from fortress.sharding.errors import CircuitOpen, ShardTimeout, ShardUnavailable
from fortress.sharding.probes import probe_error
from fortress.sharding.router import ShardEndpoint

DSN = "postgresql://app:S3CRET@db-a:5432/shards"
REPLICA = "postgresql://app:R3PLICA@db-a-ro:5432/shards"
LABELS = (Secret.of(DSN, "ns", "shards", "a").label, Secret.of(REPLICA, "ns", "shards", "a-ro").label)
ENDPOINT = ShardEndpoint("shard-a", DSN, (REPLICA,), LABELS)


def test_labelled_dsns_are_named_by_secret_and_key() -> None:
    endpoint = ShardEndpoint("shard-a", DSN, (REPLICA,), LABELS)
    assert [s.label for s in endpoint.secrets()] == [
        "<Secret ns/shards key a>",
        "<Secret ns/shards key a-ro>",
    ]
    text = endpoint.hide(f"cannot connect to {DSN}")
    assert text == "cannot connect to <Secret ns/shards key a>"
    assert endpoint.where() == "<Secret ns/shards key a> (db-a:5432/shards)"
    assert "R3PLICA" not in endpoint.hide(f"password R3PLICA in {REPLICA}", replica=0)
    assert endpoint.where(replica=0) == "<Secret ns/shards key a-ro> (db-a-ro:5432/shards)"


def test_unlabelled_dsns_are_hidden_all_the_same() -> None:
    endpoint = ShardEndpoint("shard-a", DSN)
    assert endpoint.secrets() == [] and endpoint.secret() is None
    assert "S3CRET" not in endpoint.hide(f"failed: {DSN}") and DSN not in endpoint.hide(f"failed: {DSN}")
    assert endpoint.where() == "the database (db-a:5432/shards)"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            ShardUnavailable("shard-a", f"connection failed: refused ({ENDPOINT.where()})"),
            "ShardUnavailable: shard shard-a is unavailable: connection failed: refused "
            "(<Secret ns/shards key a> (db-a:5432/shards))",
        ),
        (
            CircuitOpen("shard-a", 12.34),
            "CircuitOpen: shard shard-a is unavailable: its circuit is open after repeated failures; "
            "retry in 12.3s (<Secret ns/shards key a> (db-a:5432/shards))",
        ),
        (
            ShardUnavailable("shard-a", f"cannot log in: password for {DSN} rejected"),
            "ShardUnavailable: shard shard-a is unavailable: cannot log in: password for "
            "<Secret ns/shards key a> rejected (<Secret ns/shards key a> (db-a:5432/shards))",
        ),
    ],
)
def test_a_probe_error_names_the_secret_never_the_dsn(error: Exception, expected: str) -> None:
    text = probe_error(error, ENDPOINT)
    assert text == expected and "S3CRET" not in text
    assert probe_error(ShardTimeout("x", "no answer within 1s"), None) == (
        "ShardTimeout: shard x is unavailable: no answer within 1s"
    )


@pytest.mark.parametrize(
    ("seconds", "text"), [(12.34, "12.3s"), (0.1, "0.1s"), (0.04, "40ms"), (0.0004, "1ms"), (0.0, "1ms")]
)
def test_a_circuit_never_says_retry_in_zero_seconds(seconds: float, text: str) -> None:
    message = str(CircuitOpen("shard-a", seconds))
    assert message.endswith(f"retry in {text}") and "0.0s" not in message
