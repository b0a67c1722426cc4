"""``fortress scan``: evaluate Kubernetes manifest files against the compliance controls, offline.

``fortress scan -f DIR_OR_FILE... [--framework F]... [-o json|sarif|markdown|html|pdf]
[--fail-under SCORE] [--fail-on SEVERITY] [--exceptions FILE] [--propose-fixes] [--output-file FILE]``

Reads every ``.yaml``/``.yml``/``.json`` file (directories recursively; multi-document files and
``List`` objects), runs the same controls a ComplianceScan runs, and writes the report. Exit codes:
0 thresholds met; 1 a framework scored below ``--fail-under`` or an open finding is at or above
``--fail-on``; 2 usage error, unreadable exceptions file or no manifest could be read.
Also ``kubectl fortress scan``. Scanning a live cluster is done by a ComplianceScan resource.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE = 0, 1, 2
FRAMEWORKS = ("SOC2", "ISO27001", "GDPR", "PCI_DSS")
SEVERITIES = ("low", "medium", "high", "critical")


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("a score is between 0 and 100")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="scan manifest files against SOC 2, ISO 27001, GDPR and PCI DSS controls",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="paths",
        action="append",
        nargs="+",
        metavar="PATH",
        help="manifest file or directory (repeatable)",
    )
    parser.add_argument("--framework", action="append", choices=FRAMEWORKS, help="score only this framework")
    parser.add_argument(
        "-o", "--output", choices=("json", "sarif", "markdown", "html", "pdf"), default="markdown"
    )
    parser.add_argument(
        "--output-file", type=Path, default=None, help="write the report here (default: stdout)"
    )
    parser.add_argument(
        "--fail-under",
        type=_score,
        default=None,
        metavar="SCORE",
        help="exit 1 when a framework scores below SCORE percent",
    )
    parser.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default=None,
        help="exit 1 when an open finding has this severity or higher",
    )
    parser.add_argument(
        "--exceptions",
        type=Path,
        default=None,
        help="YAML file: a list of exceptions (controls, selector, reason, expires)",
    )
    parser.add_argument(
        "--propose-fixes", action="store_true", help="add the remediation patches to findings"
    )
    parser.add_argument("--name", default="manifests", help="report name (default: manifests)")
    parser.set_defaults(func=scan)


def scan(args: argparse.Namespace) -> int:
    import yaml

    from fortress.compliance import engine, manifests, report, reports, scoring
    from fortress.compliance.context import Context
    from fortress.compliance.exceptions import ExceptionError, parse
    from fortress.compliance.model import SEVERITY_ORDER, Framework, ObjectRef, Severity
    from fortress.compliance.remediation import Mode, Policy, plan

    if not args.paths:
        print(
            "error: give manifests with -f DIR_OR_FILE (a live cluster is scanned by a ComplianceScan)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    rules = []
    if args.exceptions is not None:
        try:
            loaded = yaml.safe_load(args.exceptions.read_text()) or []
            entries = loaded.get("exceptions", []) if isinstance(loaded, dict) else loaded
            rules = parse(entries, where=str(args.exceptions))
        except (OSError, yaml.YAMLError, ExceptionError) as error:
            print(f"error: --exceptions: {error}", file=sys.stderr)
            return EXIT_USAGE
    paths = [p for group in args.paths for p in group]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        print(f"error: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    found = manifests.load(paths)
    for problem in found.errors:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if found.files and len(found.errors) == found.files:
        print("error: no manifest could be read", file=sys.stderr)
        return EXIT_USAGE
    context = Context.build(found.objects)
    result = engine.evaluate(found.objects, exceptions=rules, context=context)
    frameworks = [Framework(f) for f in args.framework] if args.framework else list(Framework)
    actions = []
    if args.propose_fixes:
        objects = {ObjectRef.of(o): o for o in found.objects}
        proposed = plan(
            result.findings,
            objects,
            context,
            Policy(mode=Mode.DRY_RUN, max_severity=Severity.CRITICAL, max_per_scan=10**9),
        )
        actions = proposed.actions
    document = report.build(result, frameworks, origins=found.origins, actions=actions, name=args.name)
    data = reports.render(document, args.output)
    if args.output_file is not None:
        args.output_file.write_bytes(data)
    else:
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        except BrokenPipeError:
            pass
    breached = []
    if args.fail_under is not None:
        for item in scoring.scores(result, frameworks):
            if item.score is not None and item.score < args.fail_under:
                breached.append(f"{item.framework.value} scored {item.score:.2f} < {args.fail_under:g}")
    if args.fail_on is not None:
        floor = SEVERITY_ORDER[Severity(args.fail_on)]
        in_scope = {c["id"] for c in document["controls"]}
        worst = [
            f
            for f in result.open_findings()
            if f.control.id in in_scope and SEVERITY_ORDER[f.control.severity] >= floor
        ]
        if worst:
            breached.append(f"{len(worst)} open finding(s) at or above {args.fail_on}")
    for line in breached:
        print(f"fortress scan: {line}", file=sys.stderr)
    return EXIT_THRESHOLD if breached else EXIT_OK
