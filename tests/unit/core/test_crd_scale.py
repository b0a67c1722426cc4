"""The scale subresource: declared on KindInfo by model field names, generated into the CRD as paths."""

from __future__ import annotations

import dataclasses

import pytest

from fortress.api import BY_KIND, KINDS
from fortress.api.crdgen import crd_for
from fortress.api.kind import ScaleSubresource


def test_canaryrollout_has_the_scale_subresource() -> None:
    version = crd_for(BY_KIND["CanaryRollout"])["spec"]["versions"][0]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    assert schema["spec"]["properties"]["replicas"]["type"] == "integer"
    assert schema["status"]["properties"]["replicas"]["type"] == "integer"
    assert schema["status"]["properties"]["selector"]["type"] == "string"


def test_only_kinds_that_declare_it_get_it() -> None:
    for info in KINDS:
        subresources = crd_for(info)["spec"]["versions"][0]["subresources"]
        assert ("scale" in subresources) == (info.scale is not None), info.kind


def test_a_scale_path_naming_no_field_fails_the_generation() -> None:
    info = dataclasses.replace(
        BY_KIND["CanaryRollout"], scale=ScaleSubresource("replicas", "podCount", "selector")
    )
    with pytest.raises(KeyError, match="podCount"):
        crd_for(info)
