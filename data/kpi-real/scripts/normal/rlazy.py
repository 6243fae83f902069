"""Minimal reader for R lazy-load data databases (data/Rdata.rdx + Rdata.rdb) using `rdata`."""

import bz2
import gzip
import lzma
import struct
import zlib

import rdata


def _unz(b):
    if b[:2] == b"\x1f\x8b":
        return gzip.decompress(b)
    n = struct.unpack(">I", b[:4])[0]
    try:
        out = zlib.decompress(b[4:])
    except zlib.error:
        t, body = b[4:5], b[5:]
        # R_decompress3: 'Z' = raw LZMA2 stream, '2' = bzip2, '1' = zlib, '0' = none
        if t == b"Z":
            d = lzma.LZMADecompressor(
                format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
            )
            out = d.decompress(body)
        elif t == b"2":
            out = bz2.decompress(body)
        elif t == b"1":
            out = zlib.decompress(body)
        elif t == b"0":
            out = body
        else:
            raise
    assert len(out) == n
    return out


def _parse(raw):
    return rdata.parser.parse_data(raw, expand_altrep=True)


def index(prefix):
    """Return {name: (offset, length)} from prefix.rdx."""
    with open(prefix + ".rdx", "rb") as f:
        p = _parse(_unz(f.read()))
    conv = rdata.conversion.convert(p)
    vars_ = conv["variables"]
    return {k: tuple(int(x) for x in v) for k, v in vars_.items()}


def load(prefix, name, constructor_dict=None):
    idx = index(prefix)
    off, ln = idx[name]
    with open(prefix + ".rdb", "rb") as f:
        f.seek(off)
        b = f.read(ln)
    p = _parse(_unz(b))
    cd = dict(rdata.conversion.DEFAULT_CLASS_MAP)
    if constructor_dict:
        cd.update(constructor_dict)
    return rdata.conversion.convert(p, cd, default_encoding="utf8")
