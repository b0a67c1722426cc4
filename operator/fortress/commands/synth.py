"""``fortress synth``: synthetic data outside Kubernetes, and SyntheticDatasets in it.

``fortress synth generate --kind users --count N --seed S [-o csv|jsonl|text]`` streams records to
standard output (the same records a SyntheticDataset with that kind, count and seed writes; ``text``
is the canonical COPY form whose SHA-256 is ``status.digest``; ``--digest`` prints that instead).
``status NAME`` shows a dataset's progress, decoy watch and quality (also ``kubectl fortress synth``);
``regenerate NAME`` writes ``spec.request {action: regenerate}``. Exit codes: 0 done, 1 not
handled within --wait, 2 usage error, 3 API or configuration error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from typing import Any

from fortress.core.requests import handled_id, new_request_id

EXIT_OK, EXIT_PENDING, EXIT_USAGE, EXIT_API = 0, 1, 2, 3


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**53:
        raise argparse.ArgumentTypeError("the seed is between 0 and 2^53-1")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate synthetic records; show or regenerate SyntheticDatasets", description=__doc__
    )
    parser.add_argument("--kubeconfig", dest="synth_kubeconfig", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--context", dest="synth_context", default=None, help=argparse.SUPPRESS)
    verbs = parser.add_subparsers(dest="synth_verb", metavar="VERB")
    gen = verbs.add_parser("generate", help="stream records to standard output")
    gen.add_argument("--kind", choices=("users", "transactions", "timeseries"), required=True)
    gen.add_argument("--count", type=_positive, required=True, help="records (per series for timeseries)")
    gen.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    gen.add_argument("--locale", default="en_US", help="locale whose country most users live in (en_US)")
    gen.add_argument("--users", type=_positive, default=None, help="transactions: distinct users")
    gen.add_argument("--series", type=_positive, default=1, help="timeseries: number of series")
    gen.add_argument("-o", "--output", choices=("csv", "jsonl", "text"), default="csv")
    gen.add_argument("--digest", action="store_true", help="print the SHA-256 of the canonical stream only")
    gen.set_defaults(func=generate)
    for verb, text in (("status", "progress, decoy watch and quality"), ("regenerate", "regenerate now")):
        sub = verbs.add_parser(verb, help=text)
        sub.add_argument("name", nargs="?" if verb == "status" else None, help="the SyntheticDataset")
        sub.add_argument("-n", "--namespace", default="default", help="its namespace (default: default)")
        sub.add_argument("--kubeconfig", default=None, help="kubeconfig (default: $KUBECONFIG)")
        sub.add_argument("--context", default=None, help="kubeconfig context")
        sub.add_argument("-o", "--output", choices=("text", "json"), default="text")
        if verb == "regenerate":
            sub.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait until handled")
        sub.set_defaults(func=status if verb == "status" else regenerate)

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    parser.set_defaults(func=usage)


def generate(args: argparse.Namespace) -> int:
    from fortress.synthetic import render
    from fortress.synthetic.generate import Recipe, RecipeError, SeriesShape, blocks, check_locale, generator

    if (problem := check_locale(args.locale)) is not None:
        print(f"error: --locale {args.locale}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    recipe = Recipe(
        args.kind, args.count, args.seed, args.locale, args.users, SeriesShape(series=args.series)
    )
    try:
        gen = generator(recipe)
    except RecipeError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    out = sys.stdout
    digest = hashlib.sha256()
    try:
        if args.output == "csv" and not args.digest:
            out.write(render.csv_header(gen.columns))
        for block in blocks(gen):
            if args.digest:
                digest.update(render.text(block).encode())
            elif args.output == "csv":
                out.write(render.csv(block))
            elif args.output == "jsonl":
                out.write(render.jsonl(block, gen.columns))
            else:
                out.write(render.text(block))
        if args.digest:
            out.write(digest.hexdigest() + "\n")
        out.flush()
    except BrokenPipeError:  # e.g. piped into head
        return EXIT_OK
    return EXIT_OK


def _kube(args: argparse.Namespace) -> Any:
    from fortress.adapters.kube import BlockingKube, load_cluster

    kubeconfig = args.kubeconfig or getattr(args, "synth_kubeconfig", None)
    context = args.context or getattr(args, "synth_context", None)
    return BlockingKube(load_cluster(kubeconfig, context))


def _datasets() -> Any:
    from fortress.adapters.kube import custom
    from fortress.api.syntheticdataset import INFO

    return custom(INFO.group, INFO.version, INFO.plural, INFO.kind)


def describe_dataset(obj: dict[str, Any]) -> str:
    """A dataset's progress, decoy watch and quality as readable lines (pure)."""
    meta, spec, st = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c for c in st.get("conditions") or []}
    ready = conditions.get("Ready") or {}
    lines = [
        f"{meta.get('namespace')}/{meta.get('name')}: {spec.get('kind')} x {spec.get('count')}, seed "
        f"{spec.get('seed', 0)}; Ready={ready.get('status', 'Unknown')} ({ready.get('reason', '-')})",
        f"  {st.get('message') or ''}",
    ]
    if st.get("generated") is not None:
        rate = st.get("recordsPerSecond")
        eta = st.get("etaSeconds")
        lines.append(
            f"  generated {st['generated']:,} of {st.get('total') or spec.get('count'):,}"
            + (f", {rate:,.0f} records/s" if rate else "")
            + (f", ETA {eta:.0f}s" if eta else "")
        )
    if st.get("digest"):
        lines.append(f"  digest sha256:{st['digest']}")
    touched = conditions.get("DecoyTouched")
    if touched:
        lines.append(f"  decoy: DecoyTouched={touched.get('status')}: {touched.get('message')}")
    quality = st.get("quality") or {}
    if quality:
        names = quality.get("uniqueNames")
        lines.append(
            f"  quality on {quality.get('sampled'):,} records: unique records {quality.get('uniqueRecords')}"
            + (f", unique names {names}" if names is not None else "")
        )
        if quality.get("learned"):
            lines.append("  learned columns vs held-out real data   score  ceiling  floor")
            for s in quality["learned"]:
                label = f"{s['column']}: {s['metric']}"
                lines.append(f"    {label:<44}{s['score']:>6.3f}{s['ceiling']:>9.3f}{s['floor']:>7.3f}")
        if quality.get("fitted"):
            lines.append("  parametric columns: fit to the declared distribution (statistic <= threshold)")
            for f in quality["fitted"]:
                verdict = "ok" if f["passed"] else "FAILED"
                lines.append(
                    f"    {f['column']}: {f['test']}: {f['statistic']} <= {f['threshold']} {verdict}"
                )
    return "\n".join(lines)


def status(args: argparse.Namespace) -> int:
    kube = _kube(args)
    try:
        if args.name:
            found = kube.get(_datasets(), args.namespace, args.name)
            if found is None:
                print(f"error: SyntheticDataset {args.namespace}/{args.name} not found", file=sys.stderr)
                return EXIT_USAGE
            items = [found]
        else:
            items = kube.list(_datasets(), args.namespace)
    finally:
        kube.close()
    if args.output == "json":
        print(
            json.dumps([{"metadata": i.get("metadata"), "status": i.get("status")} for i in items], indent=2)
        )
    else:
        print("\n\n".join(describe_dataset(i) for i in items) or "No SyntheticDatasets found.")
    return EXIT_OK


def regenerate(args: argparse.Namespace) -> int:
    kube = _kube(args)
    try:
        request_id = new_request_id("regenerate", args.name)
        patch = {"spec": {"request": {"action": "regenerate", "requestId": request_id}}}
        kube.patch(_datasets(), args.namespace, args.name, patch)
        print(f"regenerate requested: {request_id}")
        deadline = time.monotonic() + args.wait
        while args.wait > 0:
            found = kube.get(_datasets(), args.namespace, args.name) or {}
            if handled_id(found.get("status")) == request_id:
                print(describe_dataset(found))
                return EXIT_OK
            if time.monotonic() >= deadline:
                print("not handled yet", file=sys.stderr)
                return EXIT_PENDING
            time.sleep(0.25)
    finally:
        kube.close()
    return EXIT_OK
