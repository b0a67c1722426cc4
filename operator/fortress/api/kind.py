"""The description of one custom resource kind: its models, names, columns and cross-field rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fortress.api.common import GROUP, VERSION, Model, StatusBase


@dataclass(frozen=True)
class SpecIssue:
    """A cross-field rule a spec breaks: the offending field's path and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class PrinterColumn:
    """A ``kubectl get`` column; priority 1 columns appear with ``-o wide`` only."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0
    format: str | None = None


@dataclass(frozen=True)
class ScaleSubresource:
    """The ``scale`` subresource (``kubectl scale``, a HorizontalPodAutoscaler): model field names.

    ``spec_replicas`` names a field of the spec model, ``status_replicas`` and ``label_selector`` fields
    of the status model (the selector as a label-selector string); the CRD generator turns them into
    JSON paths through the models' aliases.
    """

    spec_replicas: str
    status_replicas: str
    label_selector: str


@dataclass(frozen=True)
class KindInfo:
    """Everything the CRD generator, the operator and the plugin need to know about one kind."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec_model: type[Model]
    status_model: type[StatusBase]
    description: str
    columns: Sequence[PrinterColumn] = ()
    check: Callable[[Model], list[SpecIssue]] = field(default=lambda _spec: [])
    namespaced: bool = True
    scale: ScaleSubresource | None = None

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group(self) -> str:
        return GROUP

    @property
    def version(self) -> str:
        return VERSION

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


READY_COLUMN = PrinterColumn(
    "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Summary Ready condition."
)
PHASE_COLUMN = PrinterColumn("Phase", ".status.phase", description="Readable summary of the state.")
AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")
MESSAGE_COLUMN = PrinterColumn("Message", ".status.message", priority=1, description="Latest status message.")
