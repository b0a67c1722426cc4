"""Turning a raw spec into its model or a list of problems, each naming the offending field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fortress.api.common import Model
from fortress.api.kind import KindInfo, SpecIssue


@dataclass(frozen=True)
class Validated:
    """The outcome of validating one spec: the model when valid, else the issues."""

    spec: Model | None
    issues: tuple[SpecIssue, ...]

    @property
    def valid(self) -> bool:
        return not self.issues

    def message(self) -> str:
        return "; ".join(str(issue) for issue in self.issues)


def _path(location: tuple[int | str, ...]) -> str:
    text = "spec"
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _message(text: str) -> str:
    """pydantic's message without its "Value error, " prefix (our validators word their own)."""
    return text.removeprefix("Value error, ")


def validate_spec(info: KindInfo, raw: Mapping[str, Any] | None) -> Validated:
    """Validate a raw spec: the schema's rules (again, for the emulator) then the cross-field rules."""
    try:
        spec = info.spec_model.model_validate(dict(raw or {}))
    except ValidationError as error:
        issues = tuple(SpecIssue(_path(e["loc"]), _message(e["msg"])) for e in error.errors())
        return Validated(None, issues)
    return Validated(spec, tuple(info.check(spec)))
