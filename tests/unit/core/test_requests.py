"""core.requests: one answer to "new request or already handled", for every kind."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from fortress.api.canaryrollout import CanaryRolloutSpec, RolloutRequest
from fortress.api.drplan import FailoverRequest, RequestAction
from fortress.core.requests import handled, handled_id, new_request_id, pending

NOW = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC)


def test_a_new_request_is_pending_once() -> None:
    request = RolloutRequest(action="promote", request_id="r1")
    assert pending(request, None) is request
    assert pending(request, "r0") is request
    assert pending(request, "r1") is None
    assert pending(None, None) is None


def test_handled_id_reads_last_request_then_the_legacy_field() -> None:
    assert handled_id({"lastRequest": {"requestId": "new"}, "handledRequestId": "old"}) == "new"
    assert handled_id({"handledRequestId": "old"}) == "old"
    assert handled_id({}) is None and handled_id(None) is None


def test_handled_records_the_outcome_in_wire_form() -> None:
    record = handled("r1", "promote", "Accepted", "to stage 2/3", NOW)
    assert record == {
        "requestId": "r1",
        "action": "promote",
        "outcome": "Accepted",
        "message": "to stage 2/3",
        "at": "2026-12-06T10:00:00Z",
    }
    assert handled_id({"lastRequest": record}) == "r1"
    with pytest.raises(ValueError):
        handled("r1", "promote", "Maybe", "", NOW)


def test_dr_requests_read_the_old_field_name_for_one_release() -> None:
    old = FailoverRequest.model_validate({"type": "switchover", "targetRegion": "east", "requestId": "x"})
    assert old.action == RequestAction.SWITCHOVER
    new = FailoverRequest.model_validate({"action": "failover", "targetRegion": "east", "requestId": "y"})
    assert new.action == RequestAction.FAILOVER
    with pytest.raises(ValidationError, match="action"):
        FailoverRequest.model_validate({"targetRegion": "east", "requestId": "z"})


def test_rollout_requests_read_spec_control_for_one_release() -> None:
    base = {"service": "web", "template": {"spec": {"containers": [{"name": "a", "image": "b"}]}}}
    legacy = CanaryRolloutSpec.model_validate({**base, "control": {"action": "abort", "requestId": "a1"}})
    assert legacy.manual_request is not None and legacy.manual_request.request_id == "a1"
    both = CanaryRolloutSpec.model_validate(
        {
            **base,
            "request": {"action": "promote", "requestId": "p1"},
            "control": {"action": "abort", "requestId": "a1"},
        }
    )
    assert both.manual_request is not None and both.manual_request.request_id == "p1"


def test_new_request_ids_are_valid_and_unique() -> None:
    ids = {new_request_id("switchover", "east-1", NOW) for _ in range(50)}
    assert len(ids) == 50
    for value in ids:
        RolloutRequest(action="promote", request_id=value)  # the pattern accepts it
        assert value.startswith("switchover-east-1-20261206T100000Z-")
    assert len(new_request_id("x" * 100)) <= 64
