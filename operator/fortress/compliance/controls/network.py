"""Network controls: default-deny NetworkPolicies, exposure through Services, Ingress TLS."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from fortress.compliance.context import Context
from fortress.compliance.controls._base import Where, cis, control, nsa
from fortress.compliance.model import NOT_APPLICABLE, PASS, Control, Obj, Result, Severity, fail
from fortress.compliance.pods import WORKLOAD_KINDS

AREA = "network"
H, C, M, L = Severity.HIGH, Severity.CRITICAL, Severity.MEDIUM, Severity.LOW


def _default_deny(policy_type: str) -> Callable[[Obj, Context], Result]:
    def check(obj: Obj, ctx: Context) -> Result:
        name = str((obj.get("metadata") or {}).get("name") or "")
        for policy in ctx.network_policies.get(name, ()):
            spec = policy.get("spec") or {}
            selector = spec.get("podSelector") or {}
            types = spec.get("policyTypes") or ["Ingress"]
            rules = spec.get(policy_type.lower())
            everything = not selector.get("matchLabels") and not selector.get("matchExpressions")
            if everything and policy_type in types and not rules:
                return PASS
        return fail(f"no default-deny {policy_type} NetworkPolicy in the namespace", "/metadata/name")

    return check


def _selected(obj: Obj, ctx: Context) -> Result:
    view = ctx.pod(obj)
    if view is None or obj.get("kind") == "Job" or obj.get("kind") == "CronJob":
        return NOT_APPLICABLE
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    labels = view.metadata.get("labels") or {}
    if ctx.selected(namespace, labels, "Ingress"):
        return PASS
    return fail(
        "no NetworkPolicy restricts ingress to its pods", view.path.removesuffix("/spec") + "/metadata"
    )


def _service_type(banned: str) -> Callable[[Obj, Context], Result]:
    def check(obj: Obj, ctx: Context) -> Result:
        spec = obj.get("spec") or {}
        return fail(f"type is {banned}", "/spec/type") if spec.get("type") == banned else PASS

    return check


def _lb_source_ranges(obj: Obj, ctx: Context) -> Result:
    spec = obj.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return NOT_APPLICABLE
    ranges = spec.get("loadBalancerSourceRanges") or []
    if not ranges or any(r in ("0.0.0.0/0", "::/0") for r in ranges):
        return fail("LoadBalancer open to every address", "/spec/loadBalancerSourceRanges")
    return PASS


def _external_ips(obj: Obj, ctx: Context) -> Result:
    ips = (obj.get("spec") or {}).get("externalIPs")
    return fail("sets externalIPs", "/spec/externalIPs") if ips else PASS


def _external_name(obj: Obj, ctx: Context) -> Result:
    return _service_type("ExternalName")(obj, ctx)


def _ingress_tls(obj: Obj, ctx: Context) -> Result:
    tls = (obj.get("spec") or {}).get("tls")
    return PASS if tls else fail("has no tls section", "/spec/tls")


def _ingress_hosts_covered(obj: Obj, ctx: Context) -> Result:
    spec = obj.get("spec") or {}
    tls = spec.get("tls")
    if not tls:
        return NOT_APPLICABLE
    covered = {h for entry in tls if isinstance(entry, dict) for h in entry.get("hosts") or []}
    for i, rule in enumerate(spec.get("rules") or []):
        host = rule.get("host") if isinstance(rule, dict) else None
        if (
            host
            and host not in covered
            and not any(
                c.startswith("*.") and host.endswith(c[1:]) and host.count(".") == c.count(".")
                for c in covered
            )
        ):
            return fail(f"host {host} is not in tls.hosts", f"/spec/rules/{i}/host")
    return PASS


def _ingress_wildcard(obj: Obj, ctx: Context) -> Result:
    for i, rule in enumerate((obj.get("spec") or {}).get("rules") or []):
        if isinstance(rule, dict) and (not rule.get("host") or str(rule.get("host")).startswith("*")):
            return fail("a rule has no host or a wildcard host", f"/spec/rules/{i}")
    return PASS


SNIPPETS = (
    "nginx.ingress.kubernetes.io/configuration-snippet",
    "nginx.ingress.kubernetes.io/server-snippet",
    "nginx.ingress.kubernetes.io/auth-snippet",
    "nginx.ingress.kubernetes.io/stream-snippet",
)


def _snippets(obj: Obj, ctx: Context) -> Result:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    used = [a for a in SNIPPETS if a in annotations]
    return fail(f"uses {used[0]}", "/metadata/annotations") if used else PASS


def _ingress_sources(obj: Obj, ctx: Context) -> Result:
    spec = obj.get("spec") or {}
    for i, rule in enumerate(spec.get("ingress") or []):
        if isinstance(rule, dict) and not rule.get("from"):
            return fail(f"ingress rule {i} admits every source", f"/spec/ingress/{i}")
    return PASS


def _open_cidr(peers: object) -> bool:
    for peer in peers if isinstance(peers, list) else []:
        block = (peer or {}).get("ipBlock") if isinstance(peer, dict) else None
        if isinstance(block, dict):
            try:
                if ipaddress.ip_network(str(block.get("cidr")), strict=False).prefixlen == 0:
                    return True
            except ValueError:
                continue
    return False


def _egress_anywhere(obj: Obj, ctx: Context) -> Result:
    spec = obj.get("spec") or {}
    for i, rule in enumerate(spec.get("egress") or []):
        if isinstance(rule, dict) and _open_cidr(rule.get("to")) and not rule.get("ports"):
            return fail(f"egress rule {i} allows every address on every port", f"/spec/egress/{i}")
    return PASS


def _ingress_anywhere(obj: Obj, ctx: Context) -> Result:
    spec = obj.get("spec") or {}
    for i, rule in enumerate(spec.get("ingress") or []):
        if isinstance(rule, dict) and _open_cidr(rule.get("from")):
            return fail(f"ingress rule {i} admits 0.0.0.0/0", f"/spec/ingress/{i}")
    return PASS


_NS: Where = {"kinds": ("Namespace",), "area": AREA}
_SVC: Where = {"kinds": ("Service",), "area": AREA}
_ING: Where = {"kinds": ("Ingress",), "area": AREA}
_NP: Where = {"kinds": ("NetworkPolicy",), "area": AREA}

CONTROLS: tuple[Control, ...] = (
    control(
        "NET-DEFAULT-DENY-INGRESS",
        "Namespaces deny ingress by default",
        severity=H,
        check=_default_deny("Ingress"),
        profiles=("network",),
        source=cis("5.3.2"),
        description="The namespace has a NetworkPolicy selecting every pod with policyType Ingress and no "
        "ingress rules.",
        rationale="Without it every pod accepts connections from anywhere in the cluster.",
        remediation="Add a default-deny-ingress NetworkPolicy.",
        **_NS,
    ),
    control(
        "NET-DEFAULT-DENY-EGRESS",
        "Namespaces deny egress by default",
        severity=M,
        check=_default_deny("Egress"),
        profiles=("network",),
        source=nsa("Network separation and hardening"),
        description="The namespace has a NetworkPolicy selecting every pod with policyType Egress and no "
        "egress rules.",
        rationale="Open egress lets an intruder exfiltrate data and reach internal services.",
        remediation="Add a default-deny-egress NetworkPolicy, then allow what is needed.",
        **_NS,
    ),
    control(
        "NET-WORKLOAD-POLICY",
        "Workload pods are selected by an ingress NetworkPolicy",
        severity=M,
        check=_selected,
        profiles=("network",),
        source=cis("5.3.2"),
        description="A NetworkPolicy of the workload's namespace selects its pods for Ingress "
        "(Jobs and CronJobs "
        "are not applicable).",
        rationale="Pods no policy selects accept every connection.",
        remediation="Add a NetworkPolicy for the workload.",
        kinds=WORKLOAD_KINDS,
        area=AREA,
    ),
    control(
        "NET-NODEPORT",
        "Services are not NodePorts",
        severity=M,
        check=_service_type("NodePort"),
        profiles=("network",),
        source=nsa("Network separation and hardening"),
        description="spec.type is not NodePort.",
        rationale="A NodePort opens the service on every node's address.",
        remediation="Use ClusterIP behind an Ingress or a LoadBalancer with source ranges.",
        **_SVC,
    ),
    control(
        "NET-LOADBALANCER-SOURCES",
        "LoadBalancers restrict source ranges",
        severity=M,
        check=_lb_source_ranges,
        profiles=("network",),
        source=nsa("Network separation and hardening"),
        description="A LoadBalancer Service sets loadBalancerSourceRanges without 0.0.0.0/0.",
        rationale="An unrestricted load balancer exposes the service to the internet.",
        remediation="Set loadBalancerSourceRanges.",
        **_SVC,
    ),
    control(
        "NET-EXTERNAL-IPS",
        "Services do not set externalIPs",
        severity=H,
        check=_external_ips,
        profiles=("network",),
        source=nsa("Network separation and hardening"),
        description="spec.externalIPs is empty.",
        rationale="externalIPs can intercept traffic to any address (CVE-2020-8554).",
        remediation="Remove externalIPs.",
        **_SVC,
    ),
    control(
        "NET-EXTERNAL-NAME",
        "Services are not ExternalName aliases",
        severity=L,
        check=_external_name,
        profiles=("network",),
        source=nsa("Network separation and hardening"),
        description="spec.type is not ExternalName.",
        rationale="ExternalName services redirect in-cluster names to arbitrary hosts.",
        remediation="Call the external host directly, through an egress gateway.",
        **_SVC,
    ),
    control(
        "NET-INGRESS-TLS",
        "Ingresses terminate TLS",
        severity=H,
        check=_ingress_tls,
        profiles=("transit", "network"),
        source=nsa("Network separation and hardening: encryption"),
        description="spec.tls is set.",
        rationale="Plain HTTP exposes credentials and personal data in transit.",
        remediation="Add a tls section with a certificate Secret.",
        **_ING,
    ),
    control(
        "NET-INGRESS-TLS-HOSTS",
        "Every Ingress host is covered by TLS",
        severity=M,
        check=_ingress_hosts_covered,
        profiles=("transit",),
        source=nsa("Network separation and hardening: encryption"),
        description="Each rule's host is listed in (or matched by a wildcard of) spec.tls[].hosts.",
        rationale="A host outside tls.hosts is served over plain HTTP.",
        remediation="Add the host to spec.tls[].hosts.",
        **_ING,
    ),
    control(
        "NET-INGRESS-HOST",
        "Ingress rules name a host",
        severity=L,
        check=_ingress_wildcard,
        profiles=("network",),
        source=nsa("Network separation and hardening"),
        description="Every rule sets a host that is not a wildcard.",
        rationale="Catch-all rules expose the backend on every name pointing at the controller.",
        remediation="Set spec.rules[].host.",
        **_ING,
    ),
    control(
        "NET-INGRESS-SNIPPETS",
        "Ingresses do not inject nginx snippets",
        severity=H,
        check=_snippets,
        profiles=("hardening", "access"),
        source=nsa("Network separation and hardening"),
        description="No nginx.ingress.kubernetes.io/*-snippet annotation.",
        rationale="Snippets run arbitrary nginx configuration in the controller (CVE-2021-25742).",
        remediation="Remove the annotation.",
        **_ING,
    ),
    control(
        "NET-POLICY-SOURCES",
        "NetworkPolicy ingress rules name their sources",
        severity=L,
        check=_ingress_sources,
        profiles=("network",),
        source=nsa("Network separation and hardening"),
        description="Every ingress rule has a from list.",
        rationale="A rule without from admits every pod and address on its ports.",
        remediation="Add from (podSelector, namespaceSelector or ipBlock).",
        **_NP,
    ),
    control(
        "NET-POLICY-INGRESS-ANYWHERE",
        "NetworkPolicies do not admit 0.0.0.0/0",
        severity=M,
        check=_ingress_anywhere,
        profiles=("network",),
        source=nsa("Network separation and hardening"),
        description="No ingress ipBlock is 0.0.0.0/0 or ::/0.",
        rationale="An open ipBlock admits the internet where the pod network is routable.",
        remediation="Narrow the CIDR.",
        **_NP,
    ),
    control(
        "NET-POLICY-EGRESS-ANYWHERE",
        "NetworkPolicies do not allow all egress",
        severity=L,
        check=_egress_anywhere,
        profiles=("network",),
        source=nsa("Network separation and hardening"),
        description="No egress rule allows 0.0.0.0/0 on every port.",
        rationale="Unrestricted egress allows exfiltration.",
        remediation="Restrict ports or destinations.",
        **_NP,
    ),
)
