"""Running checkov on manifests and pairing its verdicts with Fortress's, object by object."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# Fortress control -> the checkov check with the same intent (workload objects).
PAIRS: dict[str, str] = {
    "WL-PRIVILEGED": "CKV_K8S_16",
    "WL-HOST-PID": "CKV_K8S_17",
    "WL-HOST-IPC": "CKV_K8S_18",
    "WL-HOST-NETWORK": "CKV_K8S_19",
    "WL-PRIVILEGE-ESCALATION": "CKV_K8S_20",
    "WL-READ-ONLY-ROOT": "CKV_K8S_22",
    "WL-RUN-AS-NON-ROOT": "CKV_K8S_23",
    "WL-HOST-PORTS": "CKV_K8S_26",
    "WL-HOST-PATH-RUNTIME-SOCKET": "CKV_K8S_27",
    "WL-NET-RAW": "CKV_K8S_28",
    "WL-SECCOMP": "CKV_K8S_31",
    "WL-DROP-ALL": "CKV_K8S_37",
    "WL-CAP-SYS-ADMIN": "CKV_K8S_39",
    "WL-REQUESTS-CPU": "CKV_K8S_10",
    "WL-LIMITS-CPU": "CKV_K8S_11",
    "WL-REQUESTS-MEMORY": "CKV_K8S_12",
    "WL-LIMITS-MEMORY": "CKV_K8S_13",
    "WL-IMAGE-TAG": "CKV_K8S_14",
    "WL-IMAGE-DIGEST": "CKV_K8S_43",
    "WL-LIVENESS-PROBE": "CKV_K8S_8",
    "WL-READINESS-PROBE": "CKV_K8S_9",
    "WL-AUTOMOUNT-TOKEN": "CKV_K8S_38",
    "WL-HIGH-UID": "CKV_K8S_40",
    "WL-SECRETS-IN-ENV": "CKV_K8S_35",
    "WL-NOT-DEFAULT-NAMESPACE": "CKV_K8S_21",
}


def executable() -> str | None:
    """The checkov command beside this interpreter (the shared virtualenv), or on PATH."""
    beside = Path(sys.executable).with_name("checkov")
    return str(beside) if beside.exists() else shutil.which("checkov")


def run(directory: Path, checks: list[str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    """checkov's JSON results for the kubernetes framework on ``directory`` (offline)."""
    command = [
        executable() or "checkov",
        "-d",
        str(directory),
        "--framework",
        "kubernetes",
        "-o",
        "json",
        "--compact",
        "--skip-download",
    ]
    if checks:
        command += ["--check", ",".join(checks)]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {done.returncode}: {done.stderr[-2000:]}")
    data = json.loads(done.stdout)
    return data[0] if isinstance(data, list) else data


def verdicts(data: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(check id, "Kind.namespace.name") -> PASSED or FAILED."""
    out: dict[tuple[str, str], str] = {}
    for key in ("passed_checks", "failed_checks"):
        for check in data.get("results", {}).get(key, []):
            out[(check["check_id"], check["resource"])] = check["check_result"]["result"]
    return out


def resource_name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj['kind']}.{meta.get('namespace') or 'default'}.{meta.get('name')}"
