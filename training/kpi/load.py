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
import json
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


def load_csv(path: Path, labels: Path | None = None) -> LoadedData:
    """A long CSV file, or a folder whose *.csv files (in subfolders too) each hold one series (or
    several, long format); `labels`: a NAB-style label file for series without a label column."""
    path = Path(path)
    if path.is_dir():
        # In subfolders too (NAB's data/<category>/<file>.csv); a file's series is named by its path
        # below the folder, without .csv ("realKnownCause/nyc_taxi"; a file at the top: its stem).
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".csv" and p.is_file())
        if not files:
            raise CsvError(f"{path}: no *.csv files in this folder or its subfolders; pass a CSV file or a "
                           "folder of them")  # fmt: skip
    elif path.is_file():
        files = [path]
    else:
        raise CsvError(f"{path}: no such file or folder; pass a long CSV file or a folder of per-series CSVs")
    data = LoadedData(series={}, files=[str(f) for f in files])
    for f in files:
        name = f.relative_to(path).with_suffix("").as_posix() if path.is_dir() else None
        for key, s in _read_file(f, data, name).items():
            if key in data.series:
                raise CsvError(f"{f}: series {key!r} also appears in {data.series[key].source}; rename one")
            data.series[key] = s
    if not data.series:
        raise CsvError(f"{path}: no data rows")
    if labels is not None:
        label_from_file(data, Path(labels))
    return data


def label_from_file(data: LoadedData, path: Path) -> None:
    """Label the series from a JSON file in NAB's layout, keyed by each series' file below the data
    folder ("realKnownCause/nyc_taxi.csv"; the file name alone where that is unique):

    - combined_windows.json: {"<file>.csv": [[start, end], ...]}: every point in a window is anomalous;
    - combined_labels.json: {"<file>.csv": [timestamp, ...]}: those points are.

    Times as in a CSV (ISO 8601, no offset = UTC). Series it does not name keep their own labels or
    none; a series with a label column of its own and an entry here is an error (which to believe?)."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CsvError(f"{path}: not a readable JSON label file: {exc}") from None
    if not isinstance(entries, dict):
        raise CsvError(f"{path}: a label file is a JSON object {{\"<file>.csv\": [[start, end], ...]}}")
    named = {str(k).removesuffix(".csv"): v for k, v in entries.items()}
    tails: dict[str, list[str]] = {}  # "nyc_taxi" -> the entries whose file is named so
    for k in named:
        tails.setdefault(k.rsplit("/", 1)[-1], []).append(k)
    matched = 0
    for key, s in data.series.items():
        found = named.get(key)
        if found is None and "/" not in key and len(tails.get(key, [])) == 1:  # a folder one level down
            found = named[tails[key][0]]
        if found is None:
            continue
        if s.labels is not None:
            raise CsvError(f"{s.source} has a label column, and {path} labels series {key!r} too; use one")
        s.labels = _labels_of(found, s.timestamps, path, key)
        matched += 1
    if not matched:
        raise CsvError(f"{path} labels none of the {len(data.series)} series (its entries name files such as "
                       f"{next(iter(entries), 'none')!r}; the series are named such as "
                       f"{next(iter(data.series))!r}, by their file below the data folder)")  # fmt: skip
    if matched < len(data.series):
        print(f"warning: {path} labels {matched} of the {len(data.series)} series; the others have no "
              "labels of their own there")  # fmt: skip


def _labels_of(marks: object, ts: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Per-point labels of a series from its entry: windows [start, end] (ends included) or times."""
    if not isinstance(marks, list):
        raise CsvError(f"{path}: the entry of {key!r} is not a list of windows or times")
    labels = np.zeros(len(ts), dtype=np.int8)
    for mark in marks:
        if isinstance(mark, list) and len(mark) == 2:
            start, end = (_label_time(t, path, key) for t in mark)
            labels[(ts >= start) & (ts <= end)] = 1
        elif isinstance(mark, str | int | float):
            labels[np.abs(ts - _label_time(mark, path, key)) < 0.5] = 1
        else:
            raise CsvError(f"{path}: {mark!r} in the entry of {key!r} is neither [start, end] nor a time")
    return labels


def _label_time(text: object, path: Path, key: str) -> float:
    try:
        return _parse_timestamp(str(text), isinstance(text, int | float), path, 0)
    except CsvError:
        raise CsvError(
            f"{path}: time {text!r} in the entry of {key!r} is not ISO 8601 or epoch seconds"
        ) from None


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
            # A file of another separator reads as one column holding the whole header.
            other = next((sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]), None)
            hint = f"; the file seems to separate its columns with {other!r}: use commas" if other else ""
            raise CsvError(
                f"{path}: no {role} column in the header {header}; "
                f"name one of: {', '.join(ALIASES[role])} (case-insensitive){hint}"
            )
    return found


class _Accumulator:
    def __init__(self) -> None:
        self.ts: list[float] = []
        self.values: list[float] = []
        self.labels: list[int] = []
        self.kinds: list[str] = []


def _read_file(path: Path, data: LoadedData, name: str | None = None) -> dict[str, RawSeries]:
    """The series of one file; `name`: a one-series file's series name (default: the file's stem)."""
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
            key = row[cols["series"]].strip() if "series" in cols else name or path.stem
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
