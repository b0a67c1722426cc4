"""A tiny simulated cluster for planner tests: plans are applied at once, pods come up on the next step."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from fortress.api.canaryrollout import CanaryRolloutSpec, CanaryRolloutStatus, RolloutRequest
from fortress.core.outcome import EventNote
from fortress.rollouts.model import (
    AnalysisSample,
    DeploymentView,
    Measurement,
    Observed,
    Plan,
    Raw,
    Traffic,
    template_hash,
)
from fortress.rollouts.planner import decide

T0 = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def template(version: int) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": f"web:{version}"}]},
    }


REV = {v: template_hash(template(v)) for v in (1, 2, 3)}

STAGES = [
    {"weight": 10, "pause": {"duration": "10s"}},
    {"weight": 50, "pause": {"duration": "10s"}},
    {"weight": 100, "pause": {"duration": "10s"}},
]


def spec(version: int = 1, **overrides: Any) -> CanaryRolloutSpec:
    """A canary spec of 4 pods, three 10 s stages, router by replicas, analysis off, short delays."""
    body: dict[str, Any] = {
        "service": "web",
        "replicas": 4,
        "template": template(version),
        "strategy": {"type": "canary", "canary": {"stages": copy.deepcopy(STAGES)}},
        "progressDeadline": "60s",
        "scaleDownDelay": "30s",
        "abortScaleDownDelay": "20s",
    }
    for key, value in overrides.items():
        body[key] = value
    return CanaryRolloutSpec.model_validate(body)


def analysed(version: int = 1, **overrides: Any) -> CanaryRolloutSpec:
    """The same with analysis against a Prometheus every 5 s, failureLimit 1."""
    analysis = {"prometheusAddress": "http://prometheus:9090", "interval": "5s", "failureLimit": 1}
    analysis.update(overrides.pop("analysis", {}))
    return spec(version, analysis=analysis, **overrides)


def measurement(
    name: str = "error-rate", raw: Raw = Raw.SUCCESSFUL, value: float | None = 0.001
) -> Measurement:
    details = {
        Raw.SUCCESSFUL: f"= {value} (<= 0.01)",
        Raw.FAILED: f"= {value} > max 0.01",
        Raw.NO_DATA: "no data",
        Raw.ERROR: "Prometheus unreachable",
    }
    return Measurement(name, raw, value if raw in (Raw.SUCCESSFUL, Raw.FAILED) else None, 0.01, details[raw])


def sample(seconds: float, revision: str, *measurements: Measurement) -> AnalysisSample:
    return AnalysisSample(at=at(seconds), revision=revision, measurements=measurements or (measurement(),))


def good(seconds: float, revision: str) -> AnalysisSample:
    return sample(seconds, revision, measurement())


def bad(seconds: float, revision: str, value: float = 0.2) -> AnalysisSample:
    return sample(seconds, revision, measurement(raw=Raw.FAILED, value=value))


@dataclass
class World:
    """The state in status plus a cluster that obeys plans; pods are available one step later."""

    spec: CanaryRolloutSpec
    state: CanaryRolloutStatus = field(default_factory=CanaryRolloutStatus)
    deployments: dict[str, DeploymentView] = field(default_factory=dict)
    traffic: Traffic | None = None
    events: list[EventNote] = field(default_factory=list)
    held: set[str] = field(default_factory=set)  # colours whose pods never become available
    plans: list[Plan] = field(default_factory=list)

    def step(
        self, seconds: float, analysis: AnalysisSample | None = None, problem: str | None = None
    ) -> Plan:
        desired = template_hash(self.spec.template) if self.spec.template is not None else None
        observed = Observed(
            now=at(seconds),
            desired_revision=desired,
            deployments=dict(self.deployments),
            analysis=analysis,
            problem=problem,
        )
        plan = decide(self.spec, self.state, observed)
        self.state = plan.status
        for wanted in plan.deployments:
            view = self.deployments.get(wanted.colour)
            revision = view.revision if view else None
            if wanted.revision is not None and wanted.revision == desired:
                revision = desired
            elif view is None:
                continue
            available = 0 if wanted.colour in self.held else wanted.replicas
            self.deployments[wanted.colour] = DeploymentView(
                wanted.colour, True, revision, wanted.replicas, available
            )
        if plan.traffic is not None:
            self.traffic = plan.traffic
        self.events.extend(plan.events)
        self.plans.append(plan)
        return plan

    def release(self, version: int, **overrides: Any) -> None:
        self.spec = self.spec.model_copy(update={"template": template(version), **overrides})

    def request(self, action: str, request_id: str, field: str = "request") -> None:
        """A manual request in spec.request (or in its deprecated name spec.control)."""
        other = "control" if field == "request" else "request"
        wire = {"action": action, "requestId": request_id}
        self.spec = self.spec.model_copy(update={field: RolloutRequest.model_validate(wire), other: None})

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def replicas(self, colour: str) -> int:
        view = self.deployments.get(colour)
        return view.replicas if view else 0


def stable_world(s: CanaryRolloutSpec | None = None, at_seconds: float = 0.0) -> World:
    """A world whose revision 1 is released and available on blue."""
    world = World(s or spec())
    world.step(at_seconds)
    world.step(at_seconds + 1)
    assert world.state.phase == "Succeeded", world.state.message
    world.events.clear()
    return world
