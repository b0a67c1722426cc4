"""``fortress healthcheck``: check that an installation answers (the chart's ``helm test`` runs it).

    fortress healthcheck [--api URL] [--operator URL] [--crds] [--attempts N] [--interval SECONDS]

``--api`` and ``--operator`` name a base URL whose ``/healthz`` must answer 200 (the API's health
endpoint, the operator's liveness endpoint); ``--crds`` checks that every Fortress CRD is Established
and serves its version (in a pod: with the pod's ServiceAccount). Each failed check is retried
``--attempts`` times, ``--interval`` seconds apart. One line per check; exit 0 when all pass,
1 when one fails, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fortress.api import KINDS
from fortress.api.kind import KindInfo

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
HEALTH_PATH = "/healthz"


@dataclass(frozen=True)
class Result:
    """One check: what was checked, whether it passed, and what was seen."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def health_url(base: str) -> str:
    """``base`` + ``/healthz`` unless ``base`` already names a path."""
    trimmed = base.rstrip("/")
    after_host = trimmed.split("://", 1)[-1]
    return trimmed if "/" in after_host else trimmed + HEALTH_PATH


def check_http(name: str, base: str, timeout: float) -> Result:
    """GET the health endpoint; passes on HTTP 200."""
    url = health_url(base)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        return Result(name, False, f"{url} answered {error.code}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return Result(name, False, f"{url} unreachable: {reason}")
    return Result(name, status == 200, f"{url} answered {status}")


def crd_result(info: KindInfo, crd: Mapping[str, Any] | None) -> Result:
    """Whether one kind's CRD is Established and serves the version the operator uses (pure)."""
    name = f"crd {info.crd_name}"
    if crd is None:
        return Result(name, False, "not installed")
    conditions = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or []}
    established = conditions.get("Established") or {}
    if established.get("status") != "True":
        why = established.get("message") or established.get("reason") or "no Established condition"
        return Result(name, False, f"not Established: {why}")
    versions = {v.get("name"): v for v in (crd.get("spec") or {}).get("versions") or []}
    if not (versions.get(info.version) or {}).get("served"):
        return Result(name, False, f"version {info.version} not served")
    return Result(name, True, f"Established, serves {info.version}")


def check_crds(read: Callable[[str], Mapping[str, Any] | None]) -> list[Result]:
    """Every Fortress kind's CRD, read by name with ``read``."""
    return [crd_result(info, read(info.crd_name)) for info in KINDS]


def _http_check(name: str, url: str, timeout: float) -> list[Result]:
    return [check_http(name, url, timeout)]


def _crd_check(args: argparse.Namespace) -> list[Result]:
    from fortress.adapters.kube import BlockingKube, Resource, load_cluster
    from fortress.core.errors import describe

    crds = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
    try:
        with BlockingKube(load_cluster(args.kubeconfig, args.context)) as kube:
            return check_crds(lambda name: kube.get(crds, None, name))
    except Exception as error:  # no kubeconfig or service account, API refused or unreachable
        return [Result("crds", False, describe(error))]


def run_checks(args: argparse.Namespace) -> list[Result]:
    """Every requested check, each retried until it passes or the attempts are used up."""
    checks: list[Callable[[], list[Result]]] = [
        functools.partial(_http_check, name, url, args.timeout)
        for name, urls in (("api", args.api), ("operator", args.operator))
        for url in urls
    ]
    if args.crds:
        checks.append(lambda: _crd_check(args))
    results: list[Result] = []
    for check in checks:
        for attempt in range(args.attempts):
            found = check()
            if all(r.ok for r in found) or attempt + 1 == args.attempts:
                break
            time.sleep(args.interval)
        results.extend(found)
    return results


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
        return value

    return parse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "healthcheck",
        help="check that the API, the operator and the CRDs answer (helm test runs it)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--api", action="append", default=[], metavar="URL", help="the API's base URL")
    parser.add_argument(
        "--operator", action="append", default=[], metavar="URL", help="the operator's liveness base URL"
    )
    parser.add_argument("--crds", action="store_true", help="check that every Fortress CRD is Established")
    parser.add_argument("--kubeconfig", default=None, help="for --crds (default: kubeconfig or in-cluster)")
    parser.add_argument("--context", default=None)
    parser.add_argument("--timeout", type=_positive(float), default=5.0, help="seconds per HTTP request")
    parser.add_argument("--attempts", type=_positive(int), default=1, help="tries per check (default 1)")
    parser.add_argument("--interval", type=_positive(float), default=2.0, help="seconds between tries")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (args.api or args.operator or args.crds):
        print(
            "fortress healthcheck: error: nothing to check: give --api, --operator or --crds", file=sys.stderr
        )
        return EXIT_USAGE
    results = run_checks(args)
    for result in results:
        print(result.line())
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
