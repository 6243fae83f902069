"""`python -m schemas`: print the JSON Schemas of the wire format, or check a file of records."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, TypeAdapter

from schemas.dead_letter import DeadLetter
from schemas.decode import DEFAULT_MAX_BYTES, Rejection, decode
from schemas.manifest import ModelManifest
from schemas.outputs import AnomalyAlert, ScoreMessage
from schemas.records import ImageRecord, MetricPoint, Record

MODELS: dict[str, type[BaseModel]] = {
    "ImageRecord": ImageRecord,
    "MetricPoint": MetricPoint,
    "AnomalyAlert": AnomalyAlert,
    "ScoreMessage": ScoreMessage,
    "DeadLetter": DeadLetter,
    "ModelManifest": ModelManifest,
}


def json_schemas(names: list[str] | None = None) -> dict[str, dict]:
    """JSON Schema of each wire model by name, plus `Record` (any input record)."""
    out = {name: model.model_json_schema() for name, model in MODELS.items()}
    out["Record"] = TypeAdapter(Record).json_schema()
    return {n: out[n] for n in names} if names else out


def validate_file(path: Path, max_bytes: int, out: TextIO | None = None) -> int:
    """Decode every line of a JSON-lines file; report each bad one. Returns the bad count."""
    out = out or sys.stdout
    bad: Counter[str] = Counter()
    total = 0
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            total += 1
            result = decode(line, max_bytes=max_bytes)
            if isinstance(result, Rejection):
                bad[result.reason.value] += 1
                print(f"{path}:{lineno}: {result.reason.value}: {result.error}", file=out)
    summary = ", ".join(f"{n} {r}" for r, n in bad.most_common()) or "all good"
    print(f"{path}: {total} records, {total - sum(bad.values())} valid ({summary})", file=out)
    return sum(bad.values())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=Path(sys.argv[0]).name if Path(sys.argv[0]).name == "anomaly-schemas" else "python -m schemas",
        description=(
            "The wire format of the anomaly worker's topics. With no options, prints the JSON "
            "Schema of every record, alert, dead letter and manifest as one JSON object, for "
            "the teams that produce and consume these topics."
        ),
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"print only these schemas (of: {', '.join([*MODELS, 'Record'])})",
    )
    p.add_argument(
        "--validate",
        type=Path,
        metavar="FILE",
        help="check a file of JSON lines (one input record per line) and report each bad "
        "line with its reason; exits 1 if any line is bad",
    )
    p.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help=f"size limit of one record, as the worker applies it (default {DEFAULT_MAX_BYTES})",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in MODELS and n != "Record"]
    if unknown:
        parser.error(f"no schema named {', '.join(unknown)}; choose from {', '.join([*MODELS, 'Record'])}")
    if args.validate is not None:
        if not args.validate.is_file():
            print(f"schemas: no such file: {args.validate}", file=sys.stderr)
            return 2
        return 1 if validate_file(args.validate, args.max_bytes) else 0
    print(json.dumps(json_schemas(args.names or None), indent=2))
    return 0
