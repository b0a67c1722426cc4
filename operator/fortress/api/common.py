"""Shared building blocks of every resource model: conditions, references, durations, base status.

Field names are snake_case in Python and camelCase on the wire (``alias_generator``). Descriptions
given with ``Field(description=...)`` become ``kubectl explain`` text in the generated CRDs.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

GROUP = "fortress.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "fortress"

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN, max_length=32),
    Field(json_schema_extra={"x-fortress-format": "duration"}),
]
"""A Go-style duration such as ``30s``, ``1m30s``, ``250ms`` or ``2h``."""

DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]
ResourceName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)]


def parse_duration(value: str) -> dt.timedelta:
    """Parse a Go-style duration (``1m30s``) into a timedelta; raise ValueError when malformed."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 30s, 1m30s, 250ms, 2h")
    seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART.findall(value))
    return dt.timedelta(seconds=seconds)


class Model(BaseModel):
    """Base of every wire model: camelCase aliases, unknown fields rejected, enums as values."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        validate_default=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as it appears in Kubernetes (camelCase, no unset optional fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """One observation of the resource's state, per the Kubernetes API conventions."""

    type: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=316)] = Field(
        description="Type of condition in CamelCase, e.g. Ready."
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    ] = Field(description="Machine-readable reason for the last transition, in CamelCase.")
    message: Annotated[str, StringConstraints(max_length=32768)] = Field(
        default="", description="Human-readable details of the last transition."
    )
    last_transition_time: str = Field(
        description="RFC 3339 time the condition last changed status.",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was set for."
    )


class SecretKeyRef(Model):
    """A key in a Secret of the resource's namespace."""

    name: ResourceName = Field(description="Name of the Secret, in the resource's namespace.")
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", min_length=1, max_length=253)] = (
        Field(description="Key within the Secret whose value is used.")
    )


class ConnectionRef(Model):
    """Where to find a PostgreSQL connection string (DSN): always a Secret, never inline."""

    secret_key_ref: SecretKeyRef = Field(
        description="Secret key holding a libpq connection URI, e.g. postgresql://user:pass@host:5432/db."
    )


class LocalObjectReference(Model):
    """A reference to an object by name in the resource's namespace."""

    name: ResourceName = Field(description="Name of the referenced object.")


class StatusBase(Model):
    """What every Fortress status has: observedGeneration, phase, conditions and a message."""

    printer_phase: ClassVar[bool] = True

    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this status was computed for."
    )
    phase: str | None = Field(default=None, description="A readable one-word summary of the state.")
    message: str | None = Field(default=None, description="Human-readable summary of the latest state.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Observations of the resource's state; Ready is always present once reconciled.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def preserve_unknown(description: str) -> Any:
    """A free-form object field (e.g. a pod template) kept as-is by the API server."""
    return Field(
        default=None,
        description=description,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "type": "object"},
    )
