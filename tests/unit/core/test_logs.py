"""``fortress run --log-format text|json``: every line about an object names its namespace/name."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from fortress import logs
from fortress.api import BY_KIND
from fortress.cli import parser as build_parser
from fortress.core.loop import Loops, ObjectLoop, ObjectRef
from fortress.core.services import Services
from tests.support.reconcilers import SpecReadyReconciler


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _loop() -> ObjectLoop:
    services = Services(cluster=None, kube=None, loops=Loops(), identity="me")  # type: ignore[arg-type]
    ref = ObjectRef(BY_KIND["CreditLedger"], "payments", "main")
    return ObjectLoop(ref, SpecReadyReconciler(services, ref), services, logging.getLogger("fortress"))


def test_text_lines_about_an_object_start_with_its_namespace_and_name(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("text")
    _loop().logger.warning("step failed, retrying in %ds", 5)
    logging.getLogger("fortress").info("operator started")
    err = capsys.readouterr().err.splitlines()
    assert any(
        line.endswith("WARNING fortress: [payments/main] step failed, retrying in 5s") for line in err
    ), err
    assert any(line.endswith("INFO fortress: operator started") for line in err), err


def test_json_lines_carry_the_object(restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json")
    _loop().logger.warning("projector: %s", "TimeoutError")
    record = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert record["message"] == "[payments/main] projector: TimeoutError"
    assert record["object"]["namespace"] == "payments" and record["object"]["name"] == "main"
    assert record["severity"] == "warn"


def test_the_run_command_takes_a_log_format() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "--log-format", "json"]).log_format == "json"
    assert parser.parse_args(["run"]).log_format == "text"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--log-format", "xml"])
    with pytest.raises(ValueError, match="xml"):
        logs.configure("xml")
