"""Readers for the AEDAT container versions the event datasets ship in.

AEDAT 2.0 (CIFAR10-DVS original release, jAER DVS128): `#` header lines (the first `#!AER-DAT2.0`), then
big-endian pairs uint32 address, uint32 timestamp [us]. AEDAT 3.1 (DVS128 Gesture): `#` header lines ending in
`#!END-HEADER`, then packets of a 28-byte little-endian header (type, source, event size, timestamp offset,
timestamp overflow, capacity, number, valid) and `capacity * size` bytes of events. AEDAT 4.0 (DV software,
Tonic's CIFAR10-DVS): `#!AER-DAT4.0\\r\\n`, a uint32 length and a flatbuffer IOHeader (compression, the byte
offset of the file data table, and an XML description of the streams with each event stream's sensor size),
then packets (int32 stream id, uint32 length, a size-prefixed flatbuffer, compressed as the header says); the
framing is checked here, the description and the packets are decoded by the `aedat` package (MIT).
"""
import struct
from pathlib import Path

import numpy as np

from .errors import DataFormatError, warn_once


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
    bit 1 polarity, bits 2-16 y, bits 17-31 x) and int32 timestamp, extended by the packet's overflow << 31.

    Events whose validity bit is 0 are dropped, as the format defines, with a `DataWarning` once per file; a
    file with no valid polarity event is refused (it would become an all-zero sample)."""
    data = _read_bytes(path)
    pos = _skip_header(path, data, b"#!AER-DAT3", end_line=b"#!END-HEADER")
    columns, first_packet = [], None
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
            first_packet = pos if first_packet is None else first_packet
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
    n_valid = int(valid.sum())
    if n_valid == 0:
        what = (f"all {len(valid)} polarity events are marked invalid (validity bit 0)" if len(valid)
                else "no polarity events (every polarity packet is empty)")
        raise DataFormatError(path, first_packet, what)
    if n_valid < len(valid):
        warn_once(("aedat31-invalid", str(path)), f"{path}: {len(valid) - n_valid} of {len(valid)} polarity "
                  "events have validity bit 0 and were dropped (as AEDAT 3.1 defines)")
    return x[valid], y[valid], t[valid], p[valid]


AEDAT4_MAGIC = b"#!AER-DAT4.0\r\n"
IOHEADER_AT = len(AEDAT4_MAGIC) + 4      # the IOHeader flatbuffer follows its uint32 length


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


def check_aedat4(path) -> list:
    """Walk an AEDAT 4.0 file's framing (magic, IOHeader, packet lengths) and raise at the first byte that
    does not fit (the `aedat` decoder itself reports no offsets); returns the byte offset of each packet.

    A file shorter than the file data table position its IOHeader states is truncated and refused, even at a
    packet boundary (whole packets would be missing without a word)."""
    data = _read_bytes(path)
    if not data.startswith(AEDAT4_MAGIC):
        raise DataFormatError(path, 0, f"not an AEDAT4 file (expected {AEDAT4_MAGIC!r}, "
                                       f"found {data[:len(AEDAT4_MAGIC)]!r})")
    at = len(AEDAT4_MAGIC)
    if len(data) < IOHEADER_AT:
        raise DataFormatError(path, at, "truncated IOHeader length")
    length = struct.unpack_from("<I", data, at)[0]
    if IOHEADER_AT + length > len(data):
        raise DataFormatError(path, at, f"IOHeader of {length} bytes runs past the end of the file "
                                        f"({len(data)} bytes)")
    table = _ioheader_data_position(path, data[IOHEADER_AT:IOHEADER_AT + length], IOHEADER_AT)
    if table > len(data):
        raise DataFormatError(path, len(data), f"truncated file: its IOHeader puts the file data table at "
                                               f"byte {table}, past the end ({len(data)} bytes)")
    end = len(data) if table < 0 else table
    pos, packets = IOHEADER_AT + length, []
    while pos < end:
        if end - pos < 8:
            raise DataFormatError(path, pos, f"truncated packet header ({end - pos} of 8 bytes)")
        size = struct.unpack_from("<I", data, pos + 4)[0]
        if pos + 8 + size > end:
            where = "the end of the file" if end == len(data) else f"the file data table at byte {end}"
            raise DataFormatError(path, pos, f"packet of {size} bytes runs past {where} ({len(data)} bytes)")
        packets.append(pos)
        pos += 8 + size
    if not packets:
        raise DataFormatError(path, pos, "no packets after the header")
    return packets


def _decoder_call(path, at: int, what: str, call):
    """call() into the `aedat` decoder, its failures turned into a DataFormatError at byte `at`. The Rust decoder
    raises RuntimeError with a message and no offset, or, on a damaged compressed packet, panics: pyo3's
    PanicException derives from BaseException (and the panic hook has already printed its own lines)."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise DataFormatError(path, at, f"{what}: {first}") from None


def read_aedat4(path, sensor_hw=None):
    """Events (t uint64 us, x, y uint16, on bool; the `aedat` package's dtype) of the lowest-numbered event
    stream of an AEDAT 4.0 file, in file order (the stream Tonic's `read_aedat4` took).

    The IOHeader states the stream's sensor size (W x H); events outside it are refused, and so is a file
    from another sensor than `sensor_hw` = (H, W) when given, or one without any event."""
    import aedat
    packets = check_aedat4(path)
    decoder = _decoder_call(path, IOHEADER_AT, "AEDAT4 IOHeader", lambda: aedat.Decoder(str(path)))
    streams = _decoder_call(path, IOHEADER_AT, "AEDAT4 IOHeader", decoder.id_to_stream)
    ids = [i for i, s in streams.items() if s["type"] == "events"]
    if not ids:
        raise DataFormatError(path, IOHEADER_AT, "no event stream in the IOHeader (types: "
                              f"{', '.join(sorted(s['type'] for s in streams.values())) or 'none'})")
    stream = min(ids)
    width, height = int(streams[stream]["width"]), int(streams[stream]["height"])
    if sensor_hw is not None and (height, width) != tuple(sensor_hw):
        raise DataFormatError(path, IOHEADER_AT, f"recorded by a {width}x{height} sensor (IOHeader, event "
                                                 f"stream {stream}), expected {sensor_hw[1]}x{sensor_hw[0]}")
    chunks, done, packet_iter = [], 0, iter(decoder)
    while True:
        at = packets[min(done, len(packets) - 1)]      # the aedat decoder yields one dict per file packet
        packet = _decoder_call(path, at, "AEDAT4 decoder", lambda: next(packet_iter, None))
        if packet is None:
            break
        done += 1
        if packet["stream_id"] != stream:
            continue
        ev = packet["events"]
        outside = np.flatnonzero((ev["x"] >= width) | (ev["y"] >= height))
        if outside.size:
            e = ev[outside[0]]
            raise DataFormatError(path, at, f"event at ({e['x']}, {e['y']}) outside the {width}x{height} "
                                            "sensor the IOHeader states")
        chunks.append(ev)
    if sum(len(c) for c in chunks) == 0:
        raise DataFormatError(path, packets[0], f"no events in event stream {stream}")
    return np.concatenate(chunks)
