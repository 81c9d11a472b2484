"""Readers for the AEDAT container versions the event datasets ship in.

AEDAT 2.0 (CIFAR10-DVS original release, jAER DVS128): `#` header lines (the first `#!AER-DAT2.0`), then
big-endian pairs uint32 address, uint32 timestamp [us]. AEDAT 3.1 (DVS128 Gesture): `#` header lines ending in
`#!END-HEADER`, then packets of a 28-byte little-endian header (type, source, event size, timestamp offset,
timestamp overflow, capacity, number, valid) and `capacity * size` bytes of events. AEDAT 4.0 (DV software,
Tonic's CIFAR10-DVS): `#!AER-DAT4.0\\r\\n`, a uint32 length and a flatbuffer IOHeader, then packets (uint32 stream
id, uint32 length, flatbuffer); the framing is checked here, the flatbuffers are decoded by the `aedat` package
through `tonic.io.read_aedat4`.
"""
import struct
from pathlib import Path

import numpy as np

from .errors import DataFormatError


def _read_bytes(path) -> bytes:
    data = Path(path).read_bytes()
    if not data:
        raise DataFormatError(path, 0, "empty file")
    return data


def _skip_header(path, data: bytes, magic: bytes, end_line: bytes = None) -> int:
    """Offset of the first byte after the `#` header lines; the first line must start with `magic`."""
    if not data.startswith(magic):
        raise DataFormatError(path, 0, f"not an AEDAT file of this version (expected {magic.decode()!r}, "
                                       f"found {data[:len(magic)]!r})")
    pos = 0
    while pos < len(data) and data[pos:pos + 1] == b"#":
        end = data.find(b"\n", pos)
        if end < 0:
            raise DataFormatError(path, pos, "header line without an end (truncated header)")
        line, pos = data[pos:end + 1], end + 1
        if end_line is not None and line.rstrip(b"\r\n") == end_line:
            return pos
    if end_line is not None:
        raise DataFormatError(path, pos, f"header has no {end_line.decode()!r} line")
    return pos


def read_aedat2(path):
    """(address uint32 [n], timestamp int64 [n] us) of an AEDAT 2.0 file, in file order."""
    data = _read_bytes(path)
    start = _skip_header(path, data, b"#!AER-DAT2")
    body = len(data) - start
    if body == 0:
        raise DataFormatError(path, start, "no events after the header")
    if body % 8:
        whole = start + body // 8 * 8
        raise DataFormatError(path, whole, f"truncated event ({body % 8} of 8 bytes)")
    pairs = np.frombuffer(data, dtype=">u4", offset=start).reshape(-1, 2)
    return pairs[:, 0].astype(np.uint32), pairs[:, 1].astype(np.int64)


POLARITY_EVENT = 1


def read_aedat31_polarity(path):
    """(x, y, t [us], p) int64 arrays of the valid polarity events of an AEDAT 3.1 file (other packet types,
    e.g. special events, are skipped as the format defines). Polarity event: uint32 data (bit 0 valid,
    bit 1 polarity, bits 2-16 y, bits 17-31 x) and int32 timestamp, extended by the packet's overflow << 31."""
    data = _read_bytes(path)
    pos = _skip_header(path, data, b"#!AER-DAT3", end_line=b"#!END-HEADER")
    columns = []
    while pos < len(data):
        if len(data) - pos < 28:
            raise DataFormatError(path, pos, f"truncated packet header ({len(data) - pos} of 28 bytes)")
        kind, _source, size, _ts_offset, overflow, capacity, number, _valid = struct.unpack_from(
            "<hhiiiiii", data, pos)
        if size <= 0 or capacity < 0 or number < 0 or number > capacity:
            raise DataFormatError(path, pos, f"not an AEDAT 3.1 packet header (type {kind}, size {size}, "
                                             f"capacity {capacity}, number {number})")
        end = pos + 28 + capacity * size
        if end > len(data):
            raise DataFormatError(path, pos, f"packet of {capacity} x {size} bytes runs past the end of the "
                                             f"file ({len(data)} bytes)")
        if kind == POLARITY_EVENT:
            if size != 8:
                raise DataFormatError(path, pos, f"polarity packet with {size}-byte events (expected 8)")
            ev = np.frombuffer(data, dtype=np.dtype([("d", "<u4"), ("t", "<i4")]), count=capacity,
                               offset=pos + 28)[:number]
            d = ev["d"].astype(np.int64)
            valid = (d & 1) == 1
            t = ev["t"].astype(np.int64) | (np.int64(overflow) << 31)
            columns.append(((d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, t, (d >> 1) & 1, valid))
        pos = end
    if not columns:
        raise DataFormatError(path, pos, "no polarity event packets")
    x, y, t, p, valid = (np.concatenate(c) for c in zip(*columns))
    return x[valid], y[valid], t[valid], p[valid]


AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"


def _ioheader_data_position(path, header: bytes, at: int) -> int:
    """file_data_position of the flatbuffer IOHeader (-1 when absent): field 1 of the root table."""
    try:
        table = struct.unpack_from("<I", header, 0)[0]
        vtable = table - struct.unpack_from("<i", header, table)[0]
        vt_size = struct.unpack_from("<H", header, vtable)[0]
        field = struct.unpack_from("<H", header, vtable + 6)[0] if vt_size >= 8 else 0
        return struct.unpack_from("<q", header, table + field)[0] if field else -1
    except struct.error:
        raise DataFormatError(path, at, "IOHeader flatbuffer is not readable") from None


def check_aedat4(path) -> None:
    """Walk an AEDAT 4.0 file's framing (magic, IOHeader, packet lengths) and raise at the first byte that
    does not fit; the `aedat` decoder itself reports no offsets."""
    data = _read_bytes(path)
    if not data.startswith(AEDAT4_MAGIC):
        raise DataFormatError(path, 0, f"not an AEDAT4 file (expected {AEDAT4_MAGIC!r}, "
                                       f"found {data[:len(AEDAT4_MAGIC)]!r})")
    at = len(AEDAT4_MAGIC)
    if len(data) < at + 4:
        raise DataFormatError(path, at, "truncated IOHeader length")
    length = struct.unpack_from("<I", data, at)[0]
    if at + 4 + length > len(data):
        raise DataFormatError(path, at, f"IOHeader of {length} bytes runs past the end of the file "
                                        f"({len(data)} bytes)")
    end = _ioheader_data_position(path, data[at + 4:at + 4 + length], at + 4)
    end = len(data) if end < 0 else end
    pos, packets = at + 4 + length, 0
    while pos < end:
        if end - pos < 8:
            raise DataFormatError(path, pos, f"truncated packet header ({end - pos} of 8 bytes)")
        size = struct.unpack_from("<I", data, pos + 4)[0]
        if pos + 8 + size > len(data):
            raise DataFormatError(path, pos, f"packet of {size} bytes runs past the end of the file "
                                             f"({len(data)} bytes)")
        pos, packets = pos + 8 + size, packets + 1
    if packets == 0:
        raise DataFormatError(path, pos, "no packets after the header")


def read_aedat4(path) -> np.ndarray:
    """Events (t uint64, x, y uint16, on bool; the `aedat` package's dtype) of the lowest-numbered event
    stream of an AEDAT 4.0 file."""
    check_aedat4(path)
    from tonic.io import read_aedat4 as tonic_read_aedat4
    try:
        return tonic_read_aedat4(str(path))
    except Exception as exc:        # the Rust decoder raises plain RuntimeError / Exception with a message
        raise DataFormatError(path, len(AEDAT4_MAGIC), f"AEDAT4 decoder: {exc}") from None
