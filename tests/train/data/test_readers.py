"""Readers on small files written in each dataset's real format (see writers.py), and their one-line errors."""
import pickle

import numpy as np
import pytest
import torch

from snnchip.train.data import load_dataset
from snnchip.train.data.aedat import read_aedat2, read_aedat31_polarity, read_aedat4
from snnchip.train.data.cifar10 import read_batch
from snnchip.train.data.cifar10_dvs import CLASSES, read_cifar10_dvs
from snnchip.train.data.errors import DataFormatError, DataWarning
from snnchip.train.data.gesture import read_labels
from snnchip.train.data.nmnist import read_nmnist

from . import reference, writers


def _one_line(exc_info, path, offset):
    msg = str(exc_info.value)
    assert "\n" not in msg and str(path) in msg and msg.endswith(f"at byte {offset}"), msg


# -- AEDAT 2.0 / CIFAR10-DVS ------------------------------------------------------------------------------

def test_aedat2_address_layout_against_tonic(tmp_path):
    tonic = reference.tonic_io()
    path = tmp_path / "cifar10_cat_0.aedat"
    # bits 8-14 = 5, bits 1-7 = 20, bit 0 = 1; then bits 8-14 = 127, bits 1-7 = 0, bit 0 = 0
    address = [(5 << 8) | (20 << 1) | 1, (127 << 8)]
    writers.write_aedat2(path, address, [100, 250])
    ev = read_cifar10_dvs(path)
    assert ev["x"].tolist() == [122, 0] and ev["y"].tolist() == [107, 127] and ev["p"].tolist() == [0, 1]
    assert ev["t"].tolist() == [100, 250]
    # Tonic's DVS128 reader: same transpose, without the flips and the polarity inversion
    # Tonic's AEDAT 2.0 parsing (its read_dvs_128 decode: x = bits 8-14, y = bits 1-7, p = bit 0; called by
    # hand because read_dvs_128 itself fails on the 3 values its header reader now returns): the same
    # transpose, without SpikingJelly's flips and polarity inversion
    version, start, _ = tonic.read_aedat_header_from_file(str(path))
    raw = tonic.get_aer_events_from_file(str(path), version, start)
    assert version == 2.0 and raw["timeStamp"].tolist() == [100, 250]
    tx, ty, tp = (raw["address"] >> 8) & 0x7F, (raw["address"] >> 1) & 0x7F, raw["address"] & 1
    assert np.array_equal(ev["x"], 127 - tx) and np.array_equal(ev["y"], 127 - ty)
    assert np.array_equal(ev["p"], 1 - tp.astype(int))


def test_aedat2_round_trip_skips_special_events_and_sorts(tmp_path):
    rng = np.random.default_rng(0)
    x, y, p = rng.integers(0, 128, 50), rng.integers(0, 128, 50), rng.integers(0, 2, 50)
    t = np.sort(rng.integers(0, 10**6, 50))
    address = writers.cifar10_dvs_address(x, y, p)
    special = np.int64(1 << 15)
    path = tmp_path / "a.aedat"
    writers.write_aedat2(path, np.r_[address[:25], special, address[25:]], np.r_[t[:25], t[25], t[25:]])
    ev = read_cifar10_dvs(path)
    assert np.array_equal(ev["x"], x) and np.array_equal(ev["y"], y) and np.array_equal(ev["p"], p)
    assert np.array_equal(ev["t"], t)
    addr, ts = read_aedat2(path)
    assert len(addr) == 51 and addr.dtype == np.uint32


def test_aedat2_errors(tmp_path):
    path = tmp_path / "e.aedat"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, 0)
    head = writers.write_aedat2(path, [1, 2, 3], [1, 2, 3])
    path.write_bytes(path.read_bytes()[:-3])                       # last event cut to 5 of 8 bytes
    with pytest.raises(DataFormatError, match="truncated event") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, head + 16)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))              # foreign
    with pytest.raises(DataFormatError, match="not an AEDAT") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, 0)
    head = writers.write_aedat2(path, [], [])
    with pytest.raises(DataFormatError, match="no events") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, head)
    path.write_bytes(b"#!AER-DAT2.0\r\n# cut in the middle of a hea")
    with pytest.raises(DataFormatError, match="header") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, 14)
    head = writers.write_aedat2(path, [7, 0x12340000], [1, 2])      # an address no DVS128 makes
    with pytest.raises(DataFormatError, match="no DVS128 address") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, head + 8)


# -- AEDAT 4.0 ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["LZ4", "ZSTD", "NONE"])
def test_aedat4_written_by_dv_processing(tmp_path, compression):
    path = tmp_path / "cifar10_dog_3.aedat4"
    packets = [[(1, 2, 100, True), (3, 4, 200, False)], [(127, 0, 300, True)], [(64, 127, 300, False)]]
    writers.write_aedat4(path, packets, compression=compression)
    ev = read_cifar10_dvs(path)
    assert ev["x"].tolist() == [1, 3, 127, 64] and ev["y"].tolist() == [2, 4, 0, 127]
    assert ev["t"].tolist() == [100, 200, 300, 300] and ev["p"].tolist() == [1, 0, 1, 0]
    raw = read_aedat4(path, (128, 128))
    # the same events as iniVation's own reader and as Tonic's read_aedat4 (which snnchip used before)
    resolution, dv_rows = reference.dv_read_events(path)
    assert resolution == (128, 128)
    ours = np.stack([raw["t"], raw["x"], raw["y"], raw["on"]], axis=1).astype(np.int64)
    assert np.array_equal(ours, dv_rows)
    assert np.array_equal(reference.tonic_io().read_aedat4(str(path)), raw)


def _packet_offsets(data: bytes):
    """Byte offsets of the packets of an AEDAT4 file and of its file data table (walked independently)."""
    header = int.from_bytes(data[14:18], "little")
    ioheader = data[18:18 + header]
    table = int.from_bytes(ioheader[:4], "little")
    vtable = table - int.from_bytes(ioheader[table:table + 4], "little", signed=True)
    field = int.from_bytes(ioheader[vtable + 6:vtable + 8], "little")
    data_table = int.from_bytes(ioheader[table + field:table + field + 8], "little", signed=True)
    pos, offsets = 18 + header, []
    while pos < data_table:
        offsets.append(pos)
        pos += 8 + int.from_bytes(data[pos + 4:pos + 8], "little")
    assert pos == data_table
    return offsets, data_table


def test_aedat4_errors(tmp_path):
    path = tmp_path / "x.aedat4"
    writers.write_aedat4(path, [[(1, 2, 100, True)], [(3, 4, 200, False), (5, 6, 300, True)]])
    good = path.read_bytes()
    (first, second), table = _packet_offsets(good)
    path.write_bytes(good[:second + 20])                             # cut inside the second packet
    with pytest.raises(DataFormatError, match="truncated file") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, second + 20)
    path.write_bytes(good[:second])                                  # cut at a packet boundary: still truncated
    with pytest.raises(DataFormatError, match="truncated file") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, second)
    broken = bytearray(good)
    broken[second + 4:second + 8] = (table - second).to_bytes(4, "little")   # a length past the data table
    path.write_bytes(bytes(broken))
    with pytest.raises(DataFormatError, match="runs past the file data table") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, second)
    broken = bytearray(good)
    broken[second + 8 + 8] ^= 0xFF                                   # the packet's flatbuffer identifier
    path.write_bytes(bytes(broken))
    with pytest.raises(DataFormatError, match="AEDAT4 decoder") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, second)
    path.write_bytes(good[:30])
    with pytest.raises(DataFormatError, match="IOHeader") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, 14)
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, 0)
    writers.write_aedat2(tmp_path / "v2.aedat", [1], [1])
    path.write_bytes((tmp_path / "v2.aedat").read_bytes())           # an AEDAT 2.0 file named .aedat4
    with pytest.raises(DataFormatError, match="not an AEDAT4") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, 0)
    writers.write_aedat4(path, [[]])                                 # the writer writes no packet
    with pytest.raises(DataFormatError, match="no packets") as e:
        read_cifar10_dvs(path)
    assert str(path) in str(e.value)


def _cifar10_dvs_tree(root, suffix, per_class=10):
    rng = np.random.default_rng(1)
    counts = {}
    for c in CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            n = 20 + i
            x, y, p = rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n)
            t = np.sort(rng.integers(0, 10**6, n))
            path = root / c / f"cifar10_{c}_{i}.{suffix}"
            if suffix == "aedat":
                writers.write_aedat2(path, writers.cifar10_dvs_address(x, y, p), t)
            else:
                writers.write_aedat4(path, [list(zip(x.tolist(), y.tolist(), t.tolist(), p.astype(bool).tolist()))])
            counts[path.name] = n
    return counts


@pytest.mark.parametrize("suffix", ["aedat", "aedat4"])
def test_cifar10_dvs_dataset_split_and_frames(tmp_path, suffix):
    counts = _cifar10_dvs_tree(tmp_path / "cifar10-dvs", suffix)
    train = load_dataset("cifar10-dvs", "train", root=tmp_path)
    test = load_dataset("cifar10-dvs", "test", root=tmp_path)
    assert (len(train), len(test)) == (90, 10)
    # per class the first 90 % by file index (numeric: 9 is before 10) train, the rest test
    assert [p.name for p in test.items] == [f"cifar10_{c}_9.{suffix}" for c in CLASSES]
    assert test.labels == list(range(10))
    x, y = train[13]
    assert x.shape == (2, 48, 48, 10) and x.dtype == torch.float32 and y == 1
    assert x.sum() == counts[train.items[13].name]          # split by number, resized: no event lost
    assert (x.sum(dim=(0, 1, 2)) > 0).all()
    x4, _ = load_dataset("cifar10-dvs", "train", root=tmp_path, T=4, size=(128, 128), binary=True)[13]
    assert x4.shape == (2, 128, 128, 4) and set(torch.unique(x4).tolist()) <= {0.0, 1.0}


def test_cifar10_dvs_missing_data_is_one_line(tmp_path):
    from snnchip.errors import InputError
    with pytest.raises(InputError, match="no .aedat or .aedat4 files") as e:
        load_dataset("cifar10-dvs", "train", root=tmp_path)
    assert "\n" not in str(e.value)


# -- N-MNIST ------------------------------------------------------------------------------------------------

def test_nmnist_bin_layout_and_overflow(tmp_path):
    path = tmp_path / "00002.bin"
    # (x, y, p, t): t uses all 23 bits; a y = 240 marker adds 2**13 us to every later timestamp
    writers.write_nmnist(path, [3, 0, 33, 7], [4, 240, 33, 8], [1, 0, 0, 1], [0x7ABCDE, 0, 5, 6])
    ev = read_nmnist(path)
    assert sorted(zip(ev["x"].tolist(), ev["y"].tolist(), ev["t"].tolist(), ev["p"].tolist())) == sorted(
        [(3, 4, 0x7ABCDE, 1), (33, 33, 5 + 2**13, 0), (7, 8, 6 + 2**13, 1)])


def test_nmnist_decoder_equals_tonic(tmp_path):
    """snnchip's own decoder against Tonic's read_mnist_file (which snnchip called before) on a file with
    overflow markers at the start, in the middle (two in a row) and at the end."""
    rng = np.random.default_rng(3)
    n = 400
    x, y = rng.integers(0, 34, n), rng.integers(0, 34, n)
    p, t = rng.integers(0, 2, n), np.sort(rng.integers(0, 1 << 23, n))
    for i in (0, 150, 151, n - 1):
        y[i] = 240                                                   # timestamp-overflow marker
    path = tmp_path / "00017.bin"
    writers.write_nmnist(path, x, y, p, t)
    tonic = reference.tonic_io()
    expect = tonic.read_mnist_file(str(path), dtype=tonic.events_struct)
    expect = expect[np.argsort(expect["t"], kind="stable")]
    ev = read_nmnist(path)
    assert len(ev) == n - 4
    for field in "xytp":
        assert np.array_equal(ev[field], expect[field].astype(ev[field].dtype)), field


def test_nmnist_errors_and_dataset(tmp_path):
    path = tmp_path / "bad.bin"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty") as e:
        read_nmnist(path)
    _one_line(e, path, 0)
    writers.write_nmnist(path, [1, 2], [1, 2], [0, 1], [10, 20])
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(DataFormatError, match="truncated event") as e:
        read_nmnist(path)
    _one_line(e, path, 5)
    writers.write_nmnist(path, [1, 200], [1, 2], [0, 1], [10, 20])   # x = 200: not a 34x34 recording
    with pytest.raises(DataFormatError, match="outside") as e:
        read_nmnist(path)
    _one_line(e, path, 5)
    for split, n in (("Train", 3), ("Test", 1)):
        for digit in range(10):
            folder = tmp_path / "nmnist" / split / str(digit)
            folder.mkdir(parents=True)
            for i in range(n):
                writers.write_nmnist(folder / f"{i:05d}.bin", [digit, 5], [i, 6], [1, 0], [100, 200 + i])
    train, test = load_dataset("nmnist", "train", root=tmp_path), load_dataset("nmnist", "test", root=tmp_path)
    assert (len(train), len(test)) == (30, 10)
    x, y = train[7]
    assert y == 2 and x.shape == (2, 34, 34, 10) and x[1, 1, 2].sum() == 1 and x[0, 6, 5].sum() == 1


# -- DVS128 Gesture (AEDAT 3.1 + CSV) -----------------------------------------------------------------------

def _gesture_file(path, user_events, overflow=1):
    writers.write_aedat31(path, [
        (0, [(0, 0, 5, 0, 1)], 0),                                  # a special-event packet: skipped
        (1, user_events[:3], 0),
        (1, user_events[3:], overflow),                             # timestamp overflow: + 2**31 us each
    ])


def test_aedat31_polarity_layout(tmp_path):
    path = tmp_path / "user01_fluorescent.aedat"
    events = [(10, 20, 100, 1, 1), (127, 0, 200, 0, 1), (5, 6, 300, 1, 0), (1, 2, 50, 0, 1)]
    _gesture_file(path, events)
    with pytest.warns(DataWarning, match="1 of 4 polarity events have validity bit 0"):
        x, y, t, p = read_aedat31_polarity(path)
    # the third event is marked invalid (bit 0 = 0); the fourth carries the packet's overflow
    assert x.tolist() == [10, 127, 1] and y.tolist() == [20, 0, 2] and p.tolist() == [1, 0, 0]
    assert t.tolist() == [100, 200, 50 + 2**31]


def test_aedat31_and_labels_errors(tmp_path):
    path = tmp_path / "user01_led.aedat"
    _gesture_file(path, [(1, 1, 10, 1, 1), (2, 2, 20, 1, 1), (3, 3, 30, 1, 1), (4, 4, 40, 1, 1)])
    good = path.read_bytes()
    head = good.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    last = head + (28 + 8) + (28 + 24)                             # third packet header
    path.write_bytes(good[:-4])
    with pytest.raises(DataFormatError, match="runs past the end") as e:
        read_aedat31_polarity(path)
    _one_line(e, path, last)
    path.write_bytes(good[:head + 10])
    with pytest.raises(DataFormatError, match="truncated packet header") as e:
        read_aedat31_polarity(path)
    _one_line(e, path, head)
    path.write_bytes(b"#!AER-DAT3.1\r\n#Format: RAW\r\n")
    with pytest.raises(DataFormatError, match="END-HEADER") as e:
        read_aedat31_polarity(path)
    _one_line(e, path, 28)
    path.write_bytes(b"#!AER-DAT2.0\r\n" + bytes(16))
    with pytest.raises(DataFormatError, match="not an AEDAT") as e:
        read_aedat31_polarity(path)
    _one_line(e, path, 0)
    labels = tmp_path / "user01_led_labels.csv"
    labels.write_text("class,startTime_usec,endTime_usec\n1,10,20\n12,30,40\n")
    with pytest.raises(DataFormatError, match="class must be") as e:
        read_labels(labels)
    _one_line(e, labels, len("class,startTime_usec,endTime_usec\n1,10,20\n"))
    labels.write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_labels(labels)


def test_gesture_dataset_user_split_and_segments(tmp_path):
    folder = tmp_path / "dvs-gesture"
    folder.mkdir()
    for user in (1, 23, 24):
        events = [(10 + user, 20, 1000 * k, k % 2, 1) for k in range(1, 7)]
        _gesture_file(folder / f"user{user:02d}_natural.aedat", events, overflow=0)
        (folder / f"user{user:02d}_natural_labels.csv").write_text(
            "class,startTime_usec,endTime_usec\r\n3,1000,3001\r\n11,4000,6000\r\n")
    train = load_dataset("dvs-gesture", "train", root=tmp_path)
    test = load_dataset("dvs-gesture", "test", root=tmp_path, size=(128, 128))
    assert (len(train), len(test)) == (4, 2) and train.labels == [2, 10, 2, 10]
    seg = test.events(0)
    assert seg["t"].tolist() == [1000, 2000, 3000]                  # start <= t < end
    assert len(test.events(1)) == 2                                 # 4000, 5000; 6000 excluded
    x, y = test[0]
    assert y == 2 and x.shape == (2, 128, 128, 16) and x[:, 20, 34].sum() == 3


# -- CIFAR-10 python batches --------------------------------------------------------------------------------

def _cifar10_tree(root, n=4):
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    images = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        img = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        writers.write_cifar10_batch(folder / name, img, np.arange(n) % 10)
        images[name] = img
    return folder, images


def test_cifar10_batches(tmp_path):
    folder, images = _cifar10_tree(tmp_path)
    img, labels = read_batch(folder / "test_batch")
    assert np.array_equal(img, images["test_batch"]) and labels.tolist() == [0, 1, 2, 3]
    train = load_dataset("cifar10", "train", root=tmp_path, T=3)
    assert len(train) == 20
    x, y = train[5]                                                  # data_batch_2, image 1
    assert x.shape == (3, 32, 32, 3) and y == 1
    expect = (images["data_batch_2"][1, 0].astype(np.float32) / 255 - 0.4914) / 0.2470
    assert torch.allclose(x[0, :, :, 2], torch.from_numpy(expect), atol=1e-5)
    assert torch.equal(x[..., 0], x[..., 2])


def test_cifar10_restricted_unpickler_and_errors(tmp_path):
    folder, _ = _cifar10_tree(tmp_path)
    path = folder / "test_batch"
    good = path.read_bytes()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(DataFormatError, match="posix.system is not allowed|os.system is not allowed") as e:
        read_batch(path)
    assert not marker.exists() and "\n" not in str(e.value)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataFormatError, match="not a readable CIFAR-10 batch") as e:
        read_batch(path)
    _one_line(e, path, len(good) // 2)
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty") as e:
        read_batch(path)
    _one_line(e, path, 0)
    path.write_bytes(pickle.dumps({b"labels": [1]}, protocol=2))
    with pytest.raises(DataFormatError, match="not a CIFAR-10 batch dict"):
        read_batch(path)
    path.write_bytes(b"GIF89a" + bytes(50))
    with pytest.raises(DataFormatError, match="not a readable") as e:
        read_batch(path)
    assert str(path) in str(e.value)
