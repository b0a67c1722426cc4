"""Alerts, dashboard and metrics reference: they name only metrics and labels the code exports.

Alerts and panels live in monitoring/ (all of them, including those waiting for a subsystem's
metric); ``python -m fortress.assets`` ships into the chart only those whose every metric exists.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from fortress import assets
from fortress.paths import repo_root
from tests.unit.core.test_chart import documents, find

FILES = assets.chart_dir() / "files"
SHIPPED_RULES = yaml.safe_load((FILES / "prometheus-rules.yaml").read_text())
SHIPPED_DASHBOARD = json.loads((FILES / "dashboard.json").read_text())
ALERTS = assets.alerts()
SETTINGS, PANELS = assets.panels()

# What the platform's users expect (issue 8), by the alert or panel that answers it.
EXPECTED_ALERTS = {
    "service down": ["FortressOperatorDown", "FortressAPIDown"],
    "error rate > 5 %": ["FortressAPIErrorRate"],
    "p95 latency > 1 s": ["FortressAPILatencyHigh"],
    "cross-shard transaction failures": ["FortressCrossShardTransactionFailures"],
    "in-doubt transactions": ["FortressInDoubtTransactions"],
    "DR region unhealthy": ["FortressDRRegionUnhealthy"],
    "replication lag > 60 s": ["FortressReplicationLagHigh"],
    "canary failing": ["FortressCanaryFailing"],
    "rollout stuck": ["FortressRolloutStuck"],
    "compliance score below 90 %": ["FortressComplianceScoreLow"],
    "critical finding": ["FortressCriticalFinding"],
    "projection lag": ["FortressProjectionLag"],
}
EXPECTED_PANELS = [
    "Request rate by colour",
    "API availability (non-5xx share)",
    "API p95 latency by route",
    "Ledger event throughput",
    "Shard query rate",
    "Replication lag by region",
    "Failover status",
    "Region health",
    "Traffic split (canary weight)",
    "Compliance score by framework",
    "Open findings by severity",
]


def test_generated_files_are_up_to_date() -> None:
    assert assets.drift() == [], "run `python -m fortress.assets`"


def test_shipped_alerts_name_only_exported_metrics_and_labels() -> None:
    rules = [rule for group in SHIPPED_RULES["groups"] for rule in group["rules"]]
    assert rules
    for rule in rules:
        assert assets.reference_problems(rule["expr"]) == [], rule["alert"]


def test_shipped_panels_name_only_exported_metrics_and_labels() -> None:
    panels = SHIPPED_DASHBOARD["panels"]
    assert panels
    for panel in panels:
        for target in panel["targets"]:
            assert assets.reference_problems(target["expr"]) == [], panel["title"]


def test_pending_alerts_and_panels_wait_only_for_metrics() -> None:
    pending = [(a.name, a.problems) for a in ALERTS if not a.shipped]
    pending += [(p.title, p.problems) for p in PANELS if not p.shipped]
    for name, problems in pending:
        assert all(" is not exported" in p or " has no label " in p for p in problems), name
    if pending:
        listing = "; ".join(f"{name} ({', '.join(problems)})" for name, problems in pending)
        pytest.skip(f"{len(pending)} alerts/panels wait for subsystem metrics: {listing}")


@pytest.mark.parametrize("need", sorted(EXPECTED_ALERTS))
def test_every_expected_alert_is_written(need: str) -> None:
    names = {alert.name for alert in ALERTS}
    assert set(EXPECTED_ALERTS[need]) <= names


def test_every_expected_panel_is_written() -> None:
    assert set(EXPECTED_PANELS) <= {panel.title for panel in PANELS}


def _anchors(markdown: str) -> set[str]:
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("alert", ALERTS, ids=[a.name for a in ALERTS])
def test_alerts_are_actionable(alert: assets.Alert) -> None:
    rule = alert.rule
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
    target = repo_root() / page
    assert target.exists() and anchor in _anchors(target.read_text()), rule["annotations"]["runbook_url"]


def test_alert_and_panel_names_are_unique() -> None:
    assert len({a.name for a in ALERTS}) == len(ALERTS)
    assert len({p.title for p in PANELS}) == len(PANELS)


def test_dashboard_is_well_formed() -> None:
    panels = SHIPPED_DASHBOARD["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and panel["targets"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    assert SHIPPED_DASHBOARD["uid"] == SETTINGS["uid"]


def test_rendered_rule_groups_follow_api_metrics() -> None:
    def groups(case: str) -> list[str]:
        (rule,) = documents(case, "PrometheusRule")
        return [group["name"] for group in rule["spec"]["groups"]]

    shipped = [group["name"] for group in SHIPPED_RULES["groups"]]
    assert groups("api-metrics") == shipped
    assert groups("monitoring") == [name for name in shipped if name != "fortress.api"]
    assert groups("api-off") == [name for name in shipped if name != "fortress.api"]
    (rule,) = documents("api-metrics", "PrometheusRule")
    assert rule["spec"]["groups"] == SHIPPED_RULES["groups"]


def test_service_monitors_scrape_what_is_served() -> None:
    assert [d["metadata"]["name"] for d in documents("monitoring", "ServiceMonitor")] == ["fortress-operator"]
    names = sorted(d["metadata"]["name"] for d in documents("api-metrics", "ServiceMonitor"))
    assert names == ["fortress-api", "fortress-operator"]
    for monitor in documents("api-metrics", "ServiceMonitor"):
        component = monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["relabelings"][0]["replacement"] == f"fortress-{component}"
        services = [
            s
            for s in documents("api-metrics", "Service")
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert any(p["name"] == endpoint["port"] for s in services for p in s["spec"]["ports"])
    assert documents("default", "ServiceMonitor") == documents("default", "PrometheusRule") == []


def test_dashboard_config_map_carries_the_dashboard() -> None:
    config_map = find("monitoring", "ConfigMap", "-dashboard")
    assert config_map["metadata"]["namespace"] == "grafana"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["fortress-overview.json"]) == SHIPPED_DASHBOARD


# --------------------------------------------------------------------------- the PromQL reader

PROMQL: list[tuple[str, set[str], dict[str, set[str]], set[str]]] = [
    ('up{job="x"} == 0', {"up"}, {"up": {"job"}}, set()),
    (
        'sum by (kind) (rate(fortress_operator_reconciles_total{result="error", kind=~"A|B"}[5m])) > 0',
        {"fortress_operator_reconciles_total"},
        {"fortress_operator_reconciles_total": {"result", "kind"}},
        {"kind"},
    ),
    (
        "histogram_quantile(0.95, sum without (pod) (rate(x_bucket[5m]))) > 1e3",
        {"x_bucket"},
        {"x_bucket": set()},
        {"pod"},
    ),
    (
        "a / on (region) group_left (plan) b offset 5m",
        {"a", "b"},
        {"a": set(), "b": set()},
        {"region", "plan"},
    ),
    ('absent(up{job="a b"} == 1) and count(c) by (le)', {"up", "c"}, {"up": {"job"}, "c": set()}, {"le"}),
]


@pytest.mark.parametrize(("expr", "metric_names", "matchers", "grouping"), PROMQL)
def test_promql_references(
    expr: str, metric_names: set[str], matchers: dict[str, set[str]], grouping: set[str]
) -> None:
    refs = assets.promql_references(expr)
    assert refs.metrics == metric_names and refs.grouping == grouping
    assert {k: set(v) for k, v in refs.matchers.items()} == matchers


def test_reference_problems_name_what_is_missing() -> None:
    available: dict[str, Any] = {"m_total": frozenset({"kind"})}
    assert assets.reference_problems('rate(m_total{kind="a"}[5m])', available) == []
    assert assets.reference_problems("rate(n_total[5m])", available) == ["metric n_total is not exported"]
    assert assets.reference_problems('m_total{colour="blue"}', available) == ["m_total has no label colour"]
    assert assets.reference_problems("sum by (shard) (m_total)", available) == [
        "no metric here has a label shard"
    ]
    assert assets.reference_problems("sum by (namespace) (m_total)", available) == []  # a target label
    with pytest.raises(ValueError):
        assets.promql_references('{__name__="m_total"}')


def test_metrics_reference_lists_every_exported_family() -> None:
    text = (assets.docs_dir() / "metrics.md").read_text()
    for family in assets.metrics.REGISTRY.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        assert f"| `{name}` | {family.type} |" in text, name


def test_every_metric_is_named_fortress_then_its_component() -> None:
    """``fortress_<component>_...``: operator, api, or the subsystem package that exports it."""
    from fortress import discovery

    components = {"operator", "api", *discovery.subsystems()}
    misnamed = [
        family.name
        for family in assets.metrics.REGISTRY.collect()
        if family.name.split("_")[0] != "fortress" or family.name.split("_")[1] not in components
    ]
    assert misnamed == []
