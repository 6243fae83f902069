"""The KPI CSV loader: both layouts, column aliases, timestamp formats, and an error for each bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from training.kpi.load import CsvError, load_csv
from training.kpi.windows import WindowConfig, prepare_all


def write(path: Path, text: str) -> Path:
    path.write_text(text.lstrip())
    return path


def test_long_file_with_labels_and_kinds(tmp_path: Path) -> None:
    p = write(
        tmp_path / "kpi.csv",
        """
series,timestamp,value,label,kind
a,2026-01-05T00:00:00Z,1.5,0,
a,2026-01-05T00:05:00Z,2.5,1,spike
b,2026-01-05 00:00:00,10,0,
""",
    )
    data = load_csv(p)
    assert list(data.series) == ["a", "b"]
    a = data.series["a"]
    assert a.values.tolist() == [1.5, 2.5] and a.labels.tolist() == [0, 1] and a.kinds == ["", "spike"]
    assert a.timestamps[1] - a.timestamps[0] == 300.0
    # No offset means UTC: both spellings of midnight are the same instant.
    assert data.series["b"].timestamps[0] == a.timestamps[0]
    assert data.has_labels and data.has_kinds


def test_aliases_case_insensitive_and_epoch_milliseconds(tmp_path: Path) -> None:
    # The AIOps KPI layout: timestamp (s), value, label, "KPI ID".
    p = write(tmp_path / "aiops.csv", "Timestamp,Value,Label,KPI ID\n1500000000,1,0,k1\n1500000060,2,1,k1\n")
    assert load_csv(p).series["k1"].timestamps.tolist() == [1.5e9, 1.50000006e9]
    ms = write(tmp_path / "ms.csv", "ts,val,is_anomaly\n1500000000000,1,0\n1500000060000,2,0\n")
    data = load_csv(ms)
    assert data.series["ms"].timestamps.tolist() == [1.5e9, 1.50000006e9]  # series name: the file stem


def test_small_integer_timestamps_are_seconds(tmp_path: Path) -> None:
    p = write(tmp_path / "idx.csv", "time,value\n0,1\n1,2\n2,3\n")
    s = load_csv(p).series["idx"]
    assert s.timestamps.tolist() == [0.0, 1.0, 2.0] and s.labels is None and s.kinds is None


def test_folder_of_per_series_files(tmp_path: Path) -> None:
    write(tmp_path / "cpu.csv", "timestamp,value\n2026-01-05T00:00:00Z,1\n2026-01-05T00:01:00Z,2\n")
    write(tmp_path / "mem.CSV", "date,value\n2026-01-05T00:00:00+01:00,5\n")
    write(tmp_path / "notes.txt", "not a csv")
    data = load_csv(tmp_path)
    assert sorted(data.series) == ["cpu", "mem"] and len(data.files) == 2
    assert data.series["mem"].timestamps[0] == data.series["cpu"].timestamps[0] - 3600


def test_empty_and_nan_values_are_missing_points_not_errors(tmp_path: Path) -> None:
    p = write(tmp_path / "s.csv", "timestamp,value\n0,1\n60,\n120,NaN\n180,4\n")
    data = load_csv(p)
    assert data.series["s"].values.tolist() == [1.0, 4.0] and data.missing_values == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp,value\n0,1\n60,abc\n", r"s\.csv, row 3: value 'abc' is not a number"),
        ("timestamp,value\n0,1\n60,inf\n", r"row 3: value 'inf' is not finite"),
        ("timestamp,value\nyesterday,1\n", r"row 2: timestamp 'yesterday' is not ISO 8601"),
        ("timestamp,value\n0,1\n2026-01-05,2\n", r"row 3: timestamp '2026-01-05' is not a number.*one"),
        ("timestamp,value,label\n0,1,maybe\n", r"row 2: label 'maybe' is not 0 or 1"),
        ("time_of_day,value\n0,1\n", r"no timestamp column.*timestamp, ts, time"),
        ("timestamp,reading\n0,1\n", r"no value column"),
        ("timestamp,value\n0\n", r"row 2: 1 fields but the header has 2"),
        ("", r"the file is empty"),
        ("timestamp,value\n", r"no data rows"),
    ],
)
def test_each_bad_input_names_the_file_row_and_fix(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "s.csv"
    p.write_text(text)
    with pytest.raises(CsvError, match=message):
        load_csv(p)


@pytest.mark.parametrize("label", ["yes", "no", "2", "-1", "nan", "anomaly", "0.5"])
def test_every_label_that_is_not_0_or_1_stops_with_the_row_and_what_is_allowed(
    tmp_path: Path, label: str
) -> None:
    # "yes" used to be read as 1 while "2" stopped: one rule for every value a label cell may hold.
    p = write(tmp_path / "s.csv", f"timestamp,value,label\n0,1,0\n60,2,{label}\n")
    message = rf"s\.csv, row 3: label '{label}' is not 0 or 1; write 1 \(or 1\.0, true\).*0 \(or 0\.0, false"
    with pytest.raises(CsvError, match=message):
        load_csv(p)


def test_a_bad_label_stops_on_a_row_whose_value_is_missing_too(tmp_path: Path) -> None:
    p = write(tmp_path / "s.csv", "timestamp,value,label\n0,1,0\n60,,yes\n")
    with pytest.raises(CsvError, match=r"row 3: label 'yes' is not 0 or 1"):
        load_csv(p)


def test_labels_read_as_0_1_true_false_in_any_case_and_empty_as_normal(tmp_path: Path) -> None:
    rows = ["1", "0", "1.0", "0.0", "TRUE", "False", "true", ""]
    text = "timestamp,value,label\n" + "".join(f"{60 * i},1,{x}\n" for i, x in enumerate(rows))
    data = load_csv(write(tmp_path / "s.csv", text))
    assert data.series["s"].labels.tolist() == [1, 0, 1, 0, 1, 0, 1, 0]


def test_missing_path_and_empty_folder_and_duplicate_series(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match="no such file or folder"):
        load_csv(tmp_path / "nope.csv")
    with pytest.raises(CsvError, match=r"no \*\.csv files"):
        load_csv(tmp_path)
    write(tmp_path / "a.csv", "series,timestamp,value\nx,0,1\n")
    write(tmp_path / "b.csv", "series,timestamp,value\nx,60,1\n")
    with pytest.raises(CsvError, match="series 'x' also appears in"):
        load_csv(tmp_path)


def long_csv(path: Path, lengths: dict[str, int]) -> Path:
    lines = ["series,timestamp,value"]
    rng = np.random.default_rng(0)
    for key, n in lengths.items():
        lines += [f"{key},{i * 60},{v:.4f}" for i, v in enumerate(rng.normal(size=n))]
    return write(path, "\n".join(lines) + "\n")


def test_too_short_series_are_skipped_with_a_warning(tmp_path: Path, capsys) -> None:
    cfg = WindowConfig(window=10, reset_gap=10, clip=20.0, train_fraction=0.5, val_fraction=0.2)
    assert cfg.min_points() == 40
    data = load_csv(long_csv(tmp_path / "k.csv", {"long": 200, "short": 30, "single": 1}))
    kept = prepare_all(data, cfg)
    assert [s.key for s in kept] == ["long"]
    out = capsys.readouterr().out
    assert "skipped 2 series" in out and "short (30 grid points)" in out and ">= 40 grid points" in out


def test_all_series_too_short_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    cfg = WindowConfig(window=50, reset_gap=50, clip=20.0, train_fraction=0.5, val_fraction=0.2)
    data = load_csv(long_csv(tmp_path / "k.csv", {"a": 150}))
    with pytest.raises(ValueError, match=r"no series is long enough.*at least 200.*smaller --window"):
        prepare_all(data, cfg, log=lambda _: None)


def test_a_header_typo_that_merges_series_stops_training_saying_why(tmp_path: Path) -> None:
    """`serie` for `series`: three interleaved series read as one. The column is named as not read,
    the dropped points are counted, and past --max-duplicate-percent training stops."""
    lines = ["serie,timestamp,value"]
    for i in range(300):
        lines += [f"{key},{i * 60},{v + i % 7}" for key, v in (("a", 1.0), ("b", 50.0), ("c", 900.0))]
    data = load_csv(write(tmp_path / "k.csv", "\n".join(lines) + "\n"))
    assert list(data.series) == ["k"] and data.unused_columns == {str(tmp_path / "k.csv"): ["serie"]}
    cfg = WindowConfig(window=10, reset_gap=10, clip=20.0, train_fraction=0.5, val_fraction=0.2)
    said: list[str] = []
    with pytest.raises(ValueError, match=r"600 of 900 points \(66\.7%\) were dropped .* name the column that "
                                         r"tells them apart `series`.*--max-duplicate-percent"):  # fmt: skip
        prepare_all(data, cfg, log=said.append)
    assert said[0].startswith(f"warning: {tmp_path / 'k.csv'}: column(s) serie not read")


def test_a_few_duplicate_slots_are_counted_and_said_not_hidden(tmp_path: Path) -> None:
    rows = [f"x,{i * 60},{i % 5}" for i in range(200)] + ["x,120,9"]  # one point twice in a slot
    data = load_csv(write(tmp_path / "k.csv", "series,timestamp,value\n" + "\n".join(rows) + "\n"))
    cfg = WindowConfig(window=10, reset_gap=10, clip=20.0, train_fraction=0.5, val_fraction=0.2)
    said: list[str] = []
    assert [s.key for s in prepare_all(data, cfg, log=said.append)] == ["x"]
    assert said == ["warning: 1 of 201 points (0.5%) were dropped as a second point in their grid slot "
                    "(most in series 'x': 1)"]  # fmt: skip


# --- NAB's layout: data/<category>/<file>.csv, labels in a JSON file beside ------------------------


def nab_tree(root: Path) -> Path:
    """Two categories of timestamp,value files, as NAB lays its data out (5-minute points)."""
    rows = "\n".join(f"2014-04-01 {h:02d}:{m:02d}:00,{h * 60 + m}" for h in range(3) for m in range(0, 60, 5))
    for name in ("realKnownCause/machine_temp.csv", "artificialWithAnomaly/art_flat.csv"):
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        write(root / "data" / name, f"timestamp,value\n{rows}\n")
    return root / "data"


def test_a_folder_of_folders_names_each_series_by_its_file_below_it(tmp_path: Path) -> None:
    data = load_csv(nab_tree(tmp_path))
    assert sorted(data.series) == ["artificialWithAnomaly/art_flat", "realKnownCause/machine_temp"]
    assert not data.has_labels


def test_nab_windows_label_every_point_inside_them_ends_included(tmp_path: Path) -> None:
    window = ["2014-04-01 01:00:00.000000", "2014-04-01 01:20:00.000000"]
    windows = {"realKnownCause/machine_temp.csv": [window], "artificialWithAnomaly/art_flat.csv": []}
    labels = write(tmp_path / "combined_windows.json", json.dumps(windows))
    data = load_csv(nab_tree(tmp_path), labels)
    temp = data.series["realKnownCause/machine_temp"]
    assert temp.labels.sum() == 5  # 01:00, :05, :10, :15, :20
    assert temp.values[temp.labels == 1].tolist() == [60, 65, 70, 75, 80]
    assert data.series["artificialWithAnomaly/art_flat"].labels.sum() == 0  # named, no window: all normal


def test_nab_point_labels_and_a_folder_given_one_level_down(tmp_path: Path, capsys) -> None:
    points = {"realKnownCause/machine_temp.csv": ["2014-04-01 02:30:00"]}
    labels = write(tmp_path / "combined_labels.json", json.dumps(points))
    data = load_csv(nab_tree(tmp_path) / "realKnownCause", labels)  # its series: "machine_temp"
    marked = data.series["machine_temp"].labels
    assert marked.tolist().index(1) == 30 and marked.sum() == 1  # 02:30, the 31st point
    nab_tree(tmp_path)
    load_csv(tmp_path / "data", labels)
    assert "labels 1 of the 2 series" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"other/file.csv": []}', "labels none of the 2 series (its entries name files such as 'other/fi"),
        ("[1, 2]", "a label file is a JSON object"),
        ("{", "not a readable JSON label file"),
        ('{"realKnownCause/machine_temp.csv": [["soon", "later"]]}', "time 'soon' in the entry of"),
    ],
)
def test_a_label_file_that_does_not_fit_says_why(tmp_path: Path, content: str, message: str) -> None:
    labels = write(tmp_path / "labels.json", content)
    with pytest.raises(CsvError, match=re.escape(message)):
        load_csv(nab_tree(tmp_path), labels)


def test_a_series_labelled_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    rows = "2014-04-01 00:00:00,1,0\n2014-04-01 00:05:00,2,1\n"
    csv = write(tmp_path / "data" / "s.csv", f"timestamp,value,label\n{rows}")
    labels = write(tmp_path / "l.json", '{"s.csv": []}')
    with pytest.raises(CsvError, match=r"has a label column, and .* labels series 's' too; use one"):
        load_csv(csv.parent, labels)


def test_a_file_with_another_separator_is_told_to_use_commas(tmp_path: Path) -> None:
    semi = write(tmp_path / "s.csv", "timestamp;value\n2014-04-01 00:00:00;1\n")
    with pytest.raises(CsvError, match="separate its columns with ';': use commas"):
        load_csv(semi)


def test_a_file_name_in_two_folders_takes_only_its_own_entry(tmp_path: Path) -> None:
    rows = "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\n"
    for folder in ("A", "B"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        write(tmp_path / "data" / folder / "x.csv", rows)
    labels = write(tmp_path / "l.json", '{"B/x.csv": [["2014-04-01 00:05:00", "2014-04-01 00:05:00"]]}')
    data = load_csv(tmp_path / "data", labels)
    assert data.series["B/x"].labels.tolist() == [0, 1]
    assert data.series["A/x"].labels is None  # not B/x's windows by its file name
