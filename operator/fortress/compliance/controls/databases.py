"""Controls on the PostgreSQL servers Fortress manages (those the Secrets of CreditLedgers, ShardClusters
and DRRegions point at).

They read ``PostgresServer`` observations: objects the scanner builds by connecting with a referenced
Secret and reading settings and the role's attributes (never the Secret's value). The shape:

    apiVersion: fortress.io/v1alpha1
    kind: PostgresServer
    metadata: {name, namespace}
    spec: {secretRef: {name, key}, referencedBy: [{kind, name, planRef?}]}
    observed: {ssl, sslMinProtocolVersion, passwordEncryption, logConnections, logDisconnections,
               logStatement, dataChecksums, serverVersionNum, connectionSsl, superuser, createRole,
               createDb, inRecovery, replicas}

An observation missing a field leaves the control not applicable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fortress.compliance.context import Context
from fortress.compliance.controls._base import Where, cis_pg, control
from fortress.compliance.model import NOT_APPLICABLE, PASS, Control, Obj, Result, Severity, fail

AREA = "databases"
KIND = "PostgresServer"
H, C, M, L = Severity.HIGH, Severity.CRITICAL, Severity.MEDIUM, Severity.LOW


def _observed(obj: Obj) -> dict[str, Any]:
    value = obj.get("observed")
    return value if isinstance(value, dict) else {}


def setting(key: str, ok: Callable[[Any], bool], what: str) -> Callable[[Obj, Context], Result]:
    def check(obj: Obj, ctx: Context) -> Result:
        observed = _observed(obj)
        if key not in observed or observed[key] is None:
            return NOT_APPLICABLE
        value = observed[key]
        return PASS if ok(value) else fail(f"{what} (observed {value!r})", f"/observed/{key}")

    return check


def _on(value: Any) -> bool:
    return value is True or str(value).lower() in ("on", "true", "yes", "1")


def _off(value: Any) -> bool:
    return not _on(value)


_TLS = {"TLSv1": 0, "TLSv1.1": 1, "TLSv1.2": 2, "TLSv1.3": 3}


def _covered(obj: Obj, ctx: Context) -> Result:
    observed = _observed(obj)
    if "inRecovery" not in observed or _on(observed.get("inRecovery")):
        return NOT_APPLICABLE  # standbys are what covers a primary
    if int(observed.get("replicas") or 0) > 0:
        return PASS
    namespace = str((obj.get("metadata") or {}).get("namespace") or "")
    for ref in (obj.get("spec") or {}).get("referencedBy") or []:
        if (
            isinstance(ref, dict)
            and ref.get("kind") == "DRRegion"
            and (namespace, ref.get("planRef")) in ctx.dr_plans
        ):
            return PASS
    return fail("a primary with no streaming replica and no DRPlan", "/observed/replicas")


_DB: Where = {"kinds": (KIND,), "area": AREA}

CONTROLS: tuple[Control, ...] = (
    control(
        "DB-SSL",
        "PostgreSQL has TLS on",
        severity=H,
        check=setting("ssl", _on, "ssl is off"),
        profiles=("transit",),
        source=cis_pg("6.7"),
        description="The server's ssl setting is on.",
        rationale="Without TLS passwords and data cross the network in clear.",
        remediation="Set ssl = on with a certificate and key.",
        **_DB,
    ),
    control(
        "DB-TLS-MIN-VERSION",
        "PostgreSQL accepts TLS 1.2 or later only",
        severity=M,
        check=setting(
            "sslMinProtocolVersion",
            lambda v: _TLS.get(str(v), 0) >= 2,
            "ssl_min_protocol_version is below TLSv1.2",
        ),
        profiles=("transit",),
        source=cis_pg("6.8"),
        description="ssl_min_protocol_version is TLSv1.2 or TLSv1.3.",
        rationale="TLS 1.0 and 1.1 have known weaknesses.",
        remediation="Set ssl_min_protocol_version = 'TLSv1.2'.",
        **_DB,
    ),
    control(
        "DB-CONNECTION-ENCRYPTED",
        "Fortress's own connection is encrypted",
        severity=H,
        check=setting("connectionSsl", _on, "the connection of the referenced Secret is not encrypted"),
        profiles=("transit",),
        source=cis_pg("6.7"),
        description="The connection made with the referenced Secret uses TLS (pg_stat_ssl).",
        rationale="A server with TLS on still accepts clear connections unless clients insist.",
        remediation="Add sslmode=verify-full (or require) to the connection URI.",
        **_DB,
    ),
    control(
        "DB-PASSWORD-ENCRYPTION",
        "Passwords are stored as SCRAM-SHA-256",
        severity=H,
        check=setting(
            "passwordEncryption", lambda v: v == "scram-sha-256", "password_encryption is not scram-sha-256"
        ),
        profiles=("authentication",),
        source=cis_pg("4.8"),
        description="password_encryption is scram-sha-256.",
        rationale="MD5 password hashes are replayable and weak.",
        remediation="Set password_encryption = 'scram-sha-256' and reset passwords.",
        **_DB,
    ),
    control(
        "DB-LOG-CONNECTIONS",
        "Connections are logged",
        severity=M,
        check=setting("logConnections", _on, "log_connections is off"),
        profiles=("logging",),
        source=cis_pg("3.1.20"),
        description="log_connections is on.",
        rationale="Who connected, from where, is the first audit question.",
        remediation="Set log_connections = on.",
        **_DB,
    ),
    control(
        "DB-LOG-DISCONNECTIONS",
        "Disconnections are logged",
        severity=L,
        check=setting("logDisconnections", _on, "log_disconnections is off"),
        profiles=("logging",),
        source=cis_pg("3.1.21"),
        description="log_disconnections is on.",
        rationale="Session durations complete the connection log.",
        remediation="Set log_disconnections = on.",
        **_DB,
    ),
    control(
        "DB-LOG-STATEMENT",
        "Schema changes are logged",
        severity=L,
        check=setting("logStatement", lambda v: v in ("ddl", "mod", "all"), "log_statement logs no DDL"),
        profiles=("logging", "change"),
        source=cis_pg("3.1.25"),
        description="log_statement is ddl, mod or all.",
        rationale="DDL changes the data's structure and access.",
        remediation="Set log_statement = 'ddl'.",
        **_DB,
    ),
    control(
        "DB-DATA-CHECKSUMS",
        "Data checksums are on",
        severity=M,
        check=setting("dataChecksums", _on, "data_checksums is off"),
        profiles=("data",),
        source=cis_pg("1.3"),
        description="The cluster was initialised with data checksums.",
        rationale="Checksums detect silent corruption of stored data.",
        remediation="Enable with pg_checksums --enable (offline) or re-initialise with --data-checksums.",
        **_DB,
    ),
    control(
        "DB-SUPPORTED-VERSION",
        "PostgreSQL is a supported major version",
        severity=M,
        check=setting("serverVersionNum", lambda v: int(v) >= 130000, "the server is older than 13"),
        profiles=("vulnerability",),
        source=cis_pg("1.2"),
        description="server_version_num is at least 130000.",
        rationale="Unsupported versions receive no security fixes.",
        remediation="Upgrade PostgreSQL.",
        **_DB,
    ),
    control(
        "DB-NO-SUPERUSER",
        "Applications do not connect as superuser",
        severity=C,
        check=setting("superuser", _off, "the application role is a superuser"),
        profiles=("access", "privilege"),
        source=cis_pg("4.3"),
        description="The role of the referenced Secret is not a superuser.",
        rationale="A superuser bypasses every permission and can run programs on the server.",
        remediation="Create an application role with only the grants it needs.",
        **_DB,
    ),
    control(
        "DB-NO-CREATEROLE",
        "Applications cannot create roles",
        severity=M,
        check=setting("createRole", _off, "the application role has CREATEROLE"),
        profiles=("access",),
        source=cis_pg("4.3"),
        description="The role of the referenced Secret lacks CREATEROLE.",
        rationale="CREATEROLE can create roles with broad grants.",
        remediation="ALTER ROLE ... NOCREATEROLE.",
        **_DB,
    ),
    control(
        "DB-NO-CREATEDB",
        "Applications cannot create databases",
        severity=L,
        check=setting("createDb", _off, "the application role has CREATEDB"),
        profiles=("access",),
        source=cis_pg("4.3"),
        description="The role of the referenced Secret lacks CREATEDB.",
        rationale="Least privilege: applications use the database they were given.",
        remediation="ALTER ROLE ... NOCREATEDB.",
        **_DB,
    ),
    control(
        "DB-PRIMARY-COVERED",
        "Each primary has a replica or a DRPlan",
        severity=H,
        check=_covered,
        profiles=("continuity",),
        source=cis_pg("7.1"),
        description="A primary streams to at least one replica, or a DRRegion of an existing DRPlan "
        "points at it.",
        rationale="A single copy of the data is lost with its disk.",
        remediation="Add a streaming replica or a DRPlan.",
        **_DB,
    ),
)
