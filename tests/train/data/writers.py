"""Writers of small files in the datasets' real formats (test helpers): AEDAT4 by iniVation's dv-processing,
the formats without a writer here (AEDAT 2.0, AEDAT 3.1, N-MNIST .bin, CIFAR-10 batches) byte by byte as each
format specifies."""
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


def write_aedat4(path, packets, resolution=(128, 128), compression="LZ4", camera="DVS128_test"):
    """An AEDAT 4.0 file written by iniVation's own writer (dv-processing's MonoCameraWriter, test-only):
    packets: list of event lists [(x, y, t, on), ...], each written as one packet of the event stream of a
    `resolution` = (W, H) sensor, compressed as `compression` (LZ4, LZ4_HIGH, ZSTD, ZSTD_HIGH, NONE)."""
    import dv_processing as dv
    config = dv.io.MonoCameraWriter.EventOnlyConfig(camera, tuple(resolution),
                                                    getattr(dv.CompressionType, compression))
    writer = dv.io.MonoCameraWriter(str(path), config)
    for events in packets:
        store = dv.EventStore()
        for x, y, t, on in events:
            store.push_back(int(t), int(x), int(y), bool(on))
        writer.writeEvents(store)
    del writer                      # the file data table and the final IOHeader are written on destruction


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
