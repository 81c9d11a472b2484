"""Writers of small files in the datasets' real formats, byte by byte as the format specifies (test helpers)."""
import pickle
import struct

import numpy as np


def write_aedat2(path, address, t, header_lines=("#!AER-DAT2.0", "# This is a raw AE data file - do not edit",
                                                 "# Data format is int32 address, int32 timestamp (8 bytes total),"
                                                 " repeated for each event", "# Timestamps tick is 1 us")):
    head = "".join(line + "\r\n" for line in header_lines).encode()
    pairs = np.empty(len(t), dtype=[("address", ">u4"), ("t", ">u4")])     # big-endian int32 pairs
    pairs["address"], pairs["t"] = address, t
    body = pairs.tobytes()
    path.write_bytes(head + body)
    return len(head)


def cifar10_dvs_address(x, y, p):
    """AEDAT 2.0 address of an event at our (x, y, p), inverting the reader's orientation
    (x = 127 - bits 8-14, y = 127 - bits 1-7, p = 1 - bit 0)."""
    x, y, p = (np.asarray(v, np.int64) for v in (x, y, p))
    return ((127 - x) << 8) | ((127 - y) << 1) | (1 - p)


def write_aedat31(path, packets):
    """packets: list of (type, [(x, y, t, p, valid), ...], overflow). Polarity (type 1) events are 8 bytes."""
    out = bytearray(b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n")
    for kind, events, overflow in packets:
        out += struct.pack("<hhiiiiii", kind, 1, 8, 4, overflow, len(events), len(events), len(events))
        for x, y, t, p, valid in events:
            out += struct.pack("<Ii", (x << 17) | (y << 2) | (p << 1) | valid, t)
    path.write_bytes(bytes(out))


def _flatbuffer_ioheader(description: str) -> bytes:
    """IOHeader table (compression None and file_data_position -1 left at their defaults) with `description`."""
    text = description.encode() + b"\0"
    buf = bytearray()
    buf += struct.pack("<I", 20) + b"IOHE"                      # root table at 20
    buf += struct.pack("<HHHHH", 10, 8, 0, 0, 4)                # vtable at 8: description at table + 4
    buf += b"\0\0"
    buf += struct.pack("<iI", 20 - 8, 28 - 24)                  # table at 20; string at 28
    buf += struct.pack("<I", len(text) - 1) + text
    buf += b"\0" * (-len(buf) % 4)
    return bytes(buf)


def _flatbuffer_events(events) -> bytes:
    """Size-prefixed EventPacket: vector of Event structs (t int64, x int16, y int16, on bool; 16 bytes)."""
    buf = bytearray()
    buf += struct.pack("<I", 0)                                 # size prefix, filled in below
    buf += struct.pack("<I", 20 - 4) + b"EVTS"                  # root offset, relative to byte 4
    buf += struct.pack("<HHH", 6, 8, 4) + b"\0\0"               # vtable at 12
    buf += struct.pack("<iI", 20 - 12, 28 - 24)                 # table at 20; vector at 28
    buf += struct.pack("<I", len(events))                       # elements start at 32 (8-aligned)
    for x, y, t, on in events:
        buf += struct.pack("<qhh?3x", t, x, y, bool(on))
    struct.pack_into("<I", buf, 0, len(buf) - 4)
    return bytes(buf)


def aedat4_description(width=128, height=128):
    return ('<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
            '<node name="0" path="/mainloop/Recorder/outInfo/0/">'
            '<attr key="compression" type="string">NONE</attr>'
            '<attr key="typeIdentifier" type="string">EVTS</attr>'
            '<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
            f'<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
            '</node></node></node></dv>')


def write_aedat4(path, packets):
    """packets: list of event lists [(x, y, t, on), ...], each one packet of stream 0."""
    header = _flatbuffer_ioheader(aedat4_description())
    out = bytearray(b"#!AER-DAT4.0\r\n") + struct.pack("<I", len(header)) + header
    for events in packets:
        fb = _flatbuffer_events(events)
        out += struct.pack("<II", 0, len(fb)) + fb
    path.write_bytes(bytes(out))


def write_nmnist(path, x, y, p, t):
    """N-MNIST .bin: 40 bits per event, x(8) y(8) p(1) t(23), big-endian bit order."""
    x, y, p, t = (np.asarray(v, np.int64) for v in (x, y, p, t))
    rec = np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], axis=1).astype(np.uint8)
    path.write_bytes(rec.tobytes())


def write_cifar10_batch(path, images, labels, name=b"training batch 1 of 5"):
    """A CIFAR-10 python batch: pickled dict of bytes keys; data uint8 [n, 3072] (R, G, B planes, row-major)."""
    data = {b"batch_label": name, b"labels": [int(v) for v in labels],
            b"data": np.asarray(images, np.uint8).reshape(len(labels), 3072),
            b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    path.write_bytes(pickle.dumps(data, protocol=2))
