"""Read KPI series from CSV: one long file `series,timestamp,value`, or a folder of one file per series.

Column names are matched case-insensitively, with the aliases real KPI data sets use:

  timestamp  timestamp | ts | time | date | datetime
  value      value | val
  series     series | kpi id | kpi_id | name | id       (optional; else the file name's stem)
  label      label | is_anomaly | anomaly              (optional; 1 = anomaly, evaluation only)
  kind       kind | anomaly_kind                       (optional; anomaly kind, evaluation only)

Timestamps: ISO 8601 ("2026-01-05T10:00:00Z", "2026-01-05 10:00:00"; no offset means UTC),
or numbers: epoch seconds, or epoch milliseconds when the file's largest number is
>= 1e11. Small integers (0, 1, 2, ...) are therefore read as seconds since the epoch:
an index at steps of 1 s. One file uses one format (decided by its first row).

Labels: 1 (or 1.0, true) marks an anomalous point; 0 (or 0.0, false, an empty cell) a normal one;
true and false in any case. Anything else (yes, 2, -1, nan) is an error that names the file, the
row and these values: a label the loader guessed at would silently change what is evaluated.

Values: a number. An empty cell or "nan" is a missing point (the row is skipped and
counted; the grid fills it later); anything else that is not a finite number is an error
that names the file and the row.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ALIASES = {
    "timestamp": ("timestamp", "ts", "time", "date", "datetime"),
    "value": ("value", "val"),
    "series": ("series", "kpi id", "kpi_id", "name", "id"),
    "label": ("label", "is_anomaly", "anomaly"),
    "kind": ("kind", "anomaly_kind"),
}
EPOCH_MS_FROM = 1e11  # a numeric timestamp this large is in milliseconds (1e11 s is the year 5138)
MISSING_VALUES = {"", "nan", "NaN", "NAN", "null", "NULL", "None", "NA"}
# Compared lower-cased. Only what label columns are written as (0/1, pandas' 1.0 and True/False):
# a word such as "yes" or "anomalous" is refused rather than guessed at.
LABEL_TRUE = {"1", "1.0", "true"}
LABEL_FALSE = {"0", "0.0", "false", ""}  # an empty cell: a point nobody marked, i.e. normal
LABELS_ALLOWED = "1 (or 1.0, true) for an anomalous point, 0 (or 0.0, false, an empty cell) for a normal one"


class CsvError(ValueError):
    """A CSV file the loader cannot read; the message names the file, the row and what to do."""


@dataclass
class RawSeries:
    """One series as read: points in file order (sorting and the grid come later)."""

    key: str
    timestamps: np.ndarray  # float64 seconds since the epoch
    values: np.ndarray  # float64
    labels: np.ndarray | None  # int8, 1 = anomaly; None when the file has no label column
    kinds: list[str] | None  # anomaly kind per point ("" for normal); None without a kind column
    source: str  # the file it came from


@dataclass
class LoadedData:
    series: dict[str, RawSeries]
    missing_values: int = 0  # rows skipped because their value was empty / NaN
    files: list[str] = field(default_factory=list)
    unused_columns: dict[str, list[str]] = field(default_factory=dict)  # by file: header names not read

    @property
    def has_labels(self) -> bool:
        return any(s.labels is not None for s in self.series.values())

    @property
    def has_kinds(self) -> bool:
        return any(s.kinds is not None for s in self.series.values())


def load_csv(path: Path) -> LoadedData:
    """A long CSV file, or a folder whose *.csv files each hold one series (or several, long format)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if not files:
            raise CsvError(f"{path}: no *.csv files in this folder; pass a CSV file or a folder of them")
    elif path.is_file():
        files = [path]
    else:
        raise CsvError(f"{path}: no such file or folder; pass a long CSV file or a folder of per-series CSVs")
    data = LoadedData(series={}, files=[str(f) for f in files])
    for f in files:
        for key, s in _read_file(f, data).items():
            if key in data.series:
                raise CsvError(f"{f}: series {key!r} also appears in {data.series[key].source}; rename one")
            data.series[key] = s
    if not data.series:
        raise CsvError(f"{path}: no data rows")
    return data


def _columns(header: list[str], path: Path) -> dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for role, names in ALIASES.items():
        for name in names:
            if name in lowered:
                found[role] = lowered.index(name)
                break
    for role in ("timestamp", "value"):
        if role not in found:
            raise CsvError(
                f"{path}: no {role} column in the header {header}; "
                f"name one of: {', '.join(ALIASES[role])} (case-insensitive)"
            )
    return found


class _Accumulator:
    def __init__(self) -> None:
        self.ts: list[float] = []
        self.values: list[float] = []
        self.labels: list[int] = []
        self.kinds: list[str] = []


def _read_file(path: Path, data: LoadedData) -> dict[str, RawSeries]:
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: spreadsheets write a BOM
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise CsvError(f"{path}: the file is empty; it needs a header row such as timestamp,value")
        cols = _columns(header, path)
        unused = [h for i, h in enumerate(header) if i not in cols.values() and h.strip()]
        if unused:
            data.unused_columns[str(path)] = unused
        acc: dict[str, _Accumulator] = {}
        numeric: bool | None = None
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(cols.values()):
                raise CsvError(f"{path}, row {line}: {len(row)} fields but the header has {len(header)}")
            key = row[cols["series"]].strip() if "series" in cols else path.stem
            if not key:
                raise CsvError(f"{path}, row {line}: empty series name")
            raw_ts = row[cols["timestamp"]].strip()
            if numeric is None:
                numeric = _is_number(raw_ts)
            ts = _parse_timestamp(raw_ts, numeric, path, line)
            # Before the missing-value skip: a bad label stops the load on every row, not only on
            # rows that have a value.
            label = _parse_label(row[cols["label"]].strip(), path, line) if "label" in cols else 0
            raw_v = row[cols["value"]].strip()
            if raw_v in MISSING_VALUES:
                data.missing_values += 1
                continue
            value = _parse_value(raw_v, path, line)
            a = acc.setdefault(key, _Accumulator())
            a.ts.append(ts)
            a.values.append(value)
            if "label" in cols:
                a.labels.append(label)
            if "kind" in cols:
                a.kinds.append(row[cols["kind"]].strip())
    out = {}
    for key, a in acc.items():
        ts = np.asarray(a.ts, dtype=np.float64)
        if numeric and np.abs(ts).max() >= EPOCH_MS_FROM:
            ts = ts / 1000.0
        out[key] = RawSeries(
            key=key,
            timestamps=ts,
            values=np.asarray(a.values, dtype=np.float64),
            labels=np.asarray(a.labels, dtype=np.int8) if "label" in cols else None,
            kinds=a.kinds if "kind" in cols else None,
            source=str(path),
        )
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_timestamp(text: str, numeric: bool, path: Path, line: int) -> float:
    if numeric:
        try:
            value = float(text)
        except ValueError:
            raise CsvError(
                f"{path}, row {line}: timestamp {text!r} is not a number, but the first row's was; "
                "use one timestamp format per file"
            ) from None
        if not math.isfinite(value):
            raise CsvError(f"{path}, row {line}: timestamp {text!r} is not finite")
        return value
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise CsvError(
            f"{path}, row {line}: timestamp {text!r} is not ISO 8601 (e.g. 2026-01-05T10:00:00Z or "
            "2026-01-05 10:00:00) nor epoch seconds; fix the row or convert the column"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # documented: no offset means UTC
    return dt.timestamp()


def _parse_value(text: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CsvError(
            f"{path}, row {line}: value {text!r} is not a number; fix it, or leave the cell empty "
            "to mark a missing point"
        ) from None
    if not math.isfinite(value):
        raise CsvError(f"{path}, row {line}: value {text!r} is not finite; leave the cell empty if missing")
    return value


def _parse_label(text: str, path: Path, line: int) -> int:
    lowered = text.lower()
    if lowered in LABEL_TRUE:
        return 1
    if lowered in LABEL_FALSE:
        return 0
    raise CsvError(
        f"{path}, row {line}: label {text!r} is not 0 or 1; write {LABELS_ALLOWED}, "
        "or drop the label column to score without labels"
    )
