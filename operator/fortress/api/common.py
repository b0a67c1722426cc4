"""Shared building blocks of every resource model: conditions, references, durations, base status.

Field names are snake_case in Python and camelCase on the wire (``alias_generator``). Descriptions
given with ``Field(description=...)`` become ``kubectl explain`` text in the generated CRDs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from fortress.core.time import DURATION_PATTERN
from fortress.core.time import parse_duration as parse_duration  # re-exported until callers move

GROUP = "fortress.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "fortress"


DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _bounded_duration(value: str) -> str:
    parse_duration(value)  # ValueError (-> a validation error naming the field) beyond MAX_DURATION
    return value


Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN, max_length=32),
    AfterValidator(_bounded_duration),
    Field(json_schema_extra={"x-fortress-format": "duration"}),
]
"""A Go-style duration such as ``30s``, ``1m30s``, ``250ms`` or ``2h``, at most 8784h (a year)."""

DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]
ResourceName = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)]


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


# --------------------------------------------------------------------------- manual requests

RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


def without_required(*names: str) -> Any:
    """A model's ``json_schema_extra`` that leaves ``names`` out of the schema's required list.

    For a field a model validator fills from a deprecated field: the CRD must accept objects that
    carry only the old name, while the model still requires the new one.
    """

    def edit(schema: dict[str, Any]) -> None:
        required = [name for name in schema.get("required", []) if name not in names]
        if required:
            schema["required"] = required
        else:
            schema.pop("required", None)

    return edit


class RequestOutcome(StrEnum):
    """What became of a manual request."""

    ACCEPTED = "Accepted"  # acted on (or being acted on)
    IGNORED = "Ignored"  # valid, but nothing to do in the current state
    REJECTED = "Rejected"  # not possible (e.g. the target cannot be promoted)


class LastRequest(Model):
    """The latest manual request the operator handled: each requestId is handled exactly once."""

    request_id: str = Field(description="The requestId of spec.request that was handled.")
    action: str = Field(description="The action it asked for.")
    outcome: RequestOutcome = Field(description="Accepted, Ignored or Rejected.")
    message: str = Field(default="", description="What was done, or why not.")
    at: str = Field(description="RFC 3339 time it was handled.", json_schema_extra={"format": "date-time"})
