"""``fortress rollout promote [--full]|abort|retry|pause|resume NAME -n NS``: steer a CanaryRollout.

Also ``kubectl fortress rollout <verb> NAME`` (the kubectl plugin delegates here). ``promote --full``
(or ``promote-full``) skips the remaining stages and analysis.

Each verb patches the resource: pause and resume set ``spec.paused``; the others write
``spec.request {action, requestId}`` with a fresh request id (and clear ``spec.control``, its
deprecated name), which the operator acts on exactly once (``status.lastRequest``); resume also sends
a ``resume`` request, which leaves a pause caused by inconclusive analysis. ``--wait SECONDS`` waits
until the operator has handled the request.
The functions here are shared with the kubectl plugin (``add_arguments`` and ``run``).
Exit codes: 0 done, 1 not handled within --wait, 2 usage error, 3 API or configuration error.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from fortress.core.requests import handled_id, new_request_id

if TYPE_CHECKING:
    from fortress.adapters.kube import BlockingKube, Resource

EXIT_OK, EXIT_PENDING, EXIT_USAGE, EXIT_API = 0, 1, 2, 3

# CLI verb -> spec.request.action (None: spec.paused only)
VERBS: dict[str, str | None] = {
    "promote": "promote",
    "promote-full": "promoteFull",
    "abort": "abort",
    "retry": "retry",
    "pause": None,
    "resume": "resume",
}
HELP = {
    "promote": "go to the next stage now (from the last stage: promote); --full: skip the remaining stages",
    "promote-full": "skip the remaining stages and analysis: scale up, then all traffic",
    "abort": "send all traffic back to the stable version; the new one scales down later",
    "retry": "release a rolled-back revision again from the first stage",
    "pause": "hold the rollout where it is (analysis keeps running; a breach still rolls back)",
    "resume": "continue a paused rollout (also one paused by inconclusive analysis)",
}


def request_patch(verb: str, request_id: str) -> dict[str, Any]:
    """The merge patch a verb writes (pure); a request also clears the deprecated spec.control."""
    if verb not in VERBS:
        raise ValueError(f"unknown verb {verb!r}; expected one of {', '.join(VERBS)}")
    spec: dict[str, Any] = {}
    if verb == "pause":
        spec["paused"] = True
    if verb == "resume":
        spec["paused"] = False
    action = VERBS[verb]
    if action is not None:
        spec["request"] = {"action": action, "requestId": request_id}
        spec["control"] = None
    return {"spec": spec}


def _rollouts() -> Resource:
    from fortress.adapters.kube import custom
    from fortress.api.canaryrollout import INFO

    return custom(INFO.group, INFO.version, INFO.plural, INFO.kind)


def send(kube: BlockingKube, namespace: str, name: str, verb: str, request_id: str | None = None) -> str:
    """Patch the CanaryRollout; the request id written."""
    request_id = request_id or new_request_id(verb, name)
    kube.patch(_rollouts(), namespace, name, request_patch(verb, request_id))
    return request_id


def read(kube: BlockingKube, namespace: str, name: str) -> dict[str, Any]:
    """The CanaryRollout (LookupError when it does not exist)."""
    found = kube.get(_rollouts(), namespace, name)
    if found is None:
        raise LookupError(f"CanaryRollout {namespace}/{name} not found")
    return found


def wait_handled(
    kube: BlockingKube,
    namespace: str,
    name: str,
    verb: str,
    request_id: str,
    timeout: float,
    poll: float = 0.25,
) -> dict[str, Any] | None:
    """The status once the operator handled the request (pause: observed the generation); None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        current = read(kube, namespace, name)
        status = current.get("status") or {}
        if VERBS[verb] is None:
            if status.get("observedGeneration") == (current.get("metadata") or {}).get("generation"):
                return status
        elif handled_id(status) == request_id:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)


def summary(status: dict[str, Any]) -> str:
    phase = status.get("phase") or "-"
    return f"phase {phase}: {status.get('message') or ''}".rstrip(": ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verbs as sub-commands of ``parser`` (``fortress rollout`` or ``kubectl fortress rollout``)."""
    verbs = parser.add_subparsers(dest="rollout_verb", metavar="VERB")
    for verb, text in HELP.items():
        sub = verbs.add_parser(verb, help=text, description=text)
        sub.add_argument("name", help="the CanaryRollout")
        sub.add_argument("-n", "--namespace", default="default", help="its namespace (default: default)")
        sub.add_argument(
            "--kubeconfig", default=None, help="kubeconfig (default: $KUBECONFIG or ~/.kube/config)"
        )
        sub.add_argument("--context", default=None, help="kubeconfig context")
        sub.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait until handled")
        sub.add_argument("--request-id", default=None, help="request id (default: generated)")
        if verb == "promote":
            sub.add_argument("--full", action="store_true", help=HELP["promote-full"])


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rollout", help="promote, abort, retry, pause or resume a CanaryRollout", description=__doc__
    )
    # also before the verb: ``kubectl fortress --kubeconfig F rollout ...`` passes them on here
    parser.add_argument("--kubeconfig", dest="rollout_kubeconfig", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--context", dest="rollout_context", default=None, help=argparse.SUPPRESS)
    add_arguments(parser)
    parser.set_defaults(func=run, rollout_parser=parser)


def verb_of(args: argparse.Namespace) -> str | None:
    """The verb the arguments ask for (``promote --full`` is ``promote-full``)."""
    verb: str | None = getattr(args, "rollout_verb", None)
    if verb == "promote" and getattr(args, "full", False):
        return "promote-full"
    return verb


def run(args: argparse.Namespace) -> int:
    verb = verb_of(args)
    if verb is None:
        parser = getattr(args, "rollout_parser", None)
        if parser is not None:
            parser.print_help(sys.stderr)
        return EXIT_USAGE
    from fortress.adapters.kube import ApiException, BlockingKube, load_cluster

    where = f"{args.namespace}/{args.name}"
    try:
        kubeconfig = args.kubeconfig or getattr(args, "rollout_kubeconfig", None)
        context = args.context or getattr(args, "rollout_context", None)
        cluster = load_cluster(kubeconfig, context)
        with BlockingKube(cluster) as kube:
            request_id = send(kube, args.namespace, args.name, verb, args.request_id)
            print(f"{verb} requested for CanaryRollout {where} (request {request_id})")
            if args.wait > 0:
                status = wait_handled(kube, args.namespace, args.name, verb, request_id, args.wait)
                if status is None:
                    print(f"not handled within {args.wait:g}s", file=sys.stderr)
                    return EXIT_PENDING
                print(summary(status))
    except ApiException as error:
        if error.status == 404:
            print(f"error: CanaryRollout {where} not found", file=sys.stderr)
        else:
            print(f"error: Kubernetes API answered {error.status}: {error.reason}", file=sys.stderr)
        return EXIT_API
    except Exception as error:  # configuration: no kubeconfig, unreachable server; deleted meanwhile
        print(f"error: {error}", file=sys.stderr)
        return EXIT_API
    return EXIT_OK
