"""What the readers refuse or report about recordings that are well-formed files but wrong or empty samples:
a recording from another sensor, events the format marks invalid, files or label windows without events."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from snnchip.train.data import dataset_info, load_dataset
from snnchip.train.data.aedat import IOHEADER_AT, read_aedat31_polarity, read_aedat4
from snnchip.train.data.cifar10_dvs import CLASSES, read_cifar10_dvs
from snnchip.train.data.errors import DataFormatError, DataWarning
from snnchip.train.data.nmnist import read_nmnist

from . import writers


def _one_line(exc_info, *parts):
    msg = str(exc_info.value)
    assert "\n" not in msg and all(str(p) in msg for p in parts), msg


def _events(n, width, height, seed=0):
    rng = np.random.default_rng(seed)
    return list(zip(rng.integers(0, width, n).tolist(), rng.integers(0, height, n).tolist(),
                    np.sort(rng.integers(0, 10**6, n)).tolist(), rng.integers(0, 2, n).astype(bool).tolist()))


def _cifar10_dvs_aedat4_tree(root, per_class=2):
    for i, c in enumerate(CLASSES):
        (root / c).mkdir(parents=True)
        for k in range(per_class):
            writers.write_aedat4(root / c / f"cifar10_{c}_{k}.aedat4", [_events(30, 128, 128, seed=10 * i + k)])


# -- the sensor size an AEDAT4 header states ------------------------------------------------------------------

def test_aedat4_from_another_sensor_is_refused_naming_file_and_both_sizes(tmp_path):
    root = tmp_path / "cifar10-dvs"
    _cifar10_dvs_aedat4_tree(root)
    # a DAVIS346 recording (346x260) in the cifar10-dvs folder: events as in the issue (x 0..129, y 0..97)
    davis = root / "cat" / "cifar10_cat_0.aedat4"
    writers.write_aedat4(davis, [_events(200, 130, 98)], resolution=(346, 260), camera="DAVIS346_00000499")
    train = load_dataset("cifar10-dvs", "train", root=tmp_path)
    index = [str(p) for p in train.items].index(str(davis))
    with pytest.raises(DataFormatError) as e:
        train[index]
    _one_line(e, davis, "346x260", "expected 128x128", f"at byte {IOHEADER_AT}")
    # refused by the header even when every event would fit the DVS128's pixels
    writers.write_aedat4(davis, [_events(50, 128, 128)], resolution=(346, 260))
    with pytest.raises(DataFormatError, match="346x260") as e:
        read_cifar10_dvs(davis)
    _one_line(e, davis, "expected 128x128")
    assert len(train[index - 1][0]) == 2 and len(read_aedat4(davis)) == 50     # no expected size: read as is


def test_snn_train_refuses_the_wrong_sensor_in_one_line(tmp_path):
    root = tmp_path / "data" / "cifar10-dvs"
    _cifar10_dvs_aedat4_tree(root)
    davis = root / "dog" / "cifar10_dog_0.aedat4"
    writers.write_aedat4(davis, [_events(200, 130, 98)], resolution=(346, 260))
    done = subprocess.run(
        [sys.executable, "-m", "snnchip.train.cli", "--dataset", "cifar10-dvs", "--data-root", str(tmp_path / "data"),
         "--depth", "8", "--width", "4", "--T", "2", "--epochs", "1", "--batch-size", "10", "--device", "cpu",
         "--no-progress", "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(davis) in done.stderr and "346x260" in done.stderr and "128x128" in done.stderr


def test_aedat4_event_outside_the_stated_sensor_is_refused_at_its_packet(tmp_path):
    path = tmp_path / "cifar10_cat_1.aedat4"
    writers.write_aedat4(path, [[(5, 5, 10, True)], [(6, 6, 20, False), (128, 3, 30, True)]])   # dv writes it
    with pytest.raises(DataFormatError, match=r"event at \(128, 3\) outside the 128x128 sensor") as e:
        read_cifar10_dvs(path)
    data = path.read_bytes()
    first = IOHEADER_AT + int.from_bytes(data[14:18], "little")
    second = first + 8 + int.from_bytes(data[first + 4:first + 8], "little")
    assert str(e.value).endswith(f"at byte {second}")


def test_event_frames_name_the_sensor_not_the_resized_frame():
    from snnchip.train.data import EventFrames, make_events
    framer = EventFrames((128, 128, 2), T=2, size=(48, 48))
    with pytest.raises(ValueError, match=r"outside the 128x128 sensor \(x 0\.\.129"):
        framer(make_events([0, 129], [0, 97], [1, 2], [0, 1]))


def test_dataset_info_sensor_is_the_readers_sensor():
    from snnchip.train.data import cifar10_dvs, gesture, nmnist
    for name, module in (("cifar10-dvs", cifar10_dvs), ("nmnist", nmnist), ("dvs-gesture", gesture)):
        assert dataset_info(name).sensor_size == module.SENSOR, name


# -- AEDAT 3.1 validity bit -----------------------------------------------------------------------------------

def _aedat31(path, valid_bits):
    events = [(k % 128, (3 * k) % 128, 100 * k, k % 2, v) for k, v in enumerate(valid_bits)]
    writers.write_aedat31(path, [(0, [(0, 0, 5, 0, 1)], 0), (1, events[:4], 0), (1, events[4:], 0)])


def test_aedat31_invalid_events_are_dropped_and_said_once_per_file(tmp_path):
    path = tmp_path / "user02_led.aedat"
    _aedat31(path, [1, 0, 1, 0, 0, 1, 1, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):                              # a file is read once per sample, so many times
            x, _, t, _ = read_aedat31_polarity(path)
    assert t.tolist() == [0, 200, 500, 600, 700]
    ours = [w for w in caught if issubclass(w.category, DataWarning)]
    assert len(ours) == 1 and str(path) in str(ours[0].message) and "3 of 8" in str(ours[0].message)
    other = tmp_path / "user03_led.aedat"
    _aedat31(other, [0, 1])
    with pytest.warns(DataWarning, match="user03_led.aedat: 1 of 2"):
        read_aedat31_polarity(other)


def test_aedat31_file_without_a_valid_event_is_refused(tmp_path):
    path = tmp_path / "user04_natural.aedat"
    _aedat31(path, [0] * 6)
    with pytest.raises(DataFormatError, match="all 6 polarity events are marked invalid") as e:
        read_aedat31_polarity(path)
    head = path.read_bytes().index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    _one_line(e, path, f"at byte {head + 28 + 8}")                 # the first polarity packet
    (tmp_path / "dvs-gesture").mkdir()
    _aedat31(tmp_path / "dvs-gesture" / "user01_led.aedat", [0] * 6)
    (tmp_path / "dvs-gesture" / "user01_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n2,0,600\n")
    with pytest.raises(DataFormatError, match="marked invalid"):
        load_dataset("dvs-gesture", "train", root=tmp_path)[0]


# -- no events: AEDAT 2.0 of special events only, N-MNIST of markers only, an empty Gesture label window ----

def test_aedat2_of_special_events_only_is_refused(tmp_path):
    path = tmp_path / "cifar10_cat_7.aedat"
    head = writers.write_aedat2(path, [1 << 15, (1 << 15) | 0x2A, 1 << 15], [10, 20, 30])
    with pytest.raises(DataFormatError, match="no pixel events: all 3 events are special events") as e:
        read_cifar10_dvs(path)
    _one_line(e, path, f"at byte {head}")


def test_nmnist_of_overflow_markers_only_is_refused(tmp_path):
    path = tmp_path / "00001.bin"
    writers.write_nmnist(path, [0, 0], [240, 240], [0, 0], [0, 0])
    with pytest.raises(DataFormatError, match="no pixel events") as e:
        read_nmnist(path)
    _one_line(e, path, "at byte 0")


def test_gesture_label_window_without_events_is_said_once_naming_file_class_and_window(tmp_path):
    folder = tmp_path / "dvs-gesture"
    folder.mkdir()
    path = folder / "user05_led.aedat"
    writers.write_aedat31(path, [(1, [(10, 20, 1000 * k, k % 2, 1) for k in range(1, 6)], 0)])
    (folder / "user05_led_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\n4,1000,3001\n7,20000,30000\n")
    train = load_dataset("dvs-gesture", "train", root=tmp_path, size=(128, 128))
    assert train[0][0].sum() == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, y = train[1]
        train[1]
    ours = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(ours) == 1, ours
    assert str(path) in ours[0] and "class 7" in ours[0] and "20000 <= t < 30000" in ours[0], ours[0]
    assert "1000..5000 us" in ours[0] and "\n" not in ours[0]
    assert y == 6 and torch.count_nonzero(x) == 0                    # kept: the split keeps its sample count


# -- Tonic is not needed at run time ---------------------------------------------------------------------------

def test_readers_run_without_tonic(tmp_path):
    writers.write_aedat4(tmp_path / "a.aedat4", [[(1, 2, 3, True)]])
    writers.write_nmnist(tmp_path / "b.bin", [1, 0, 2], [2, 240, 3], [0, 0, 1], [5, 0, 6])
    code = ("import sys; sys.modules['tonic'] = None\n"             # any `import tonic...` now raises
            "from snnchip.train.data.cifar10_dvs import read_cifar10_dvs\n"
            "from snnchip.train.data.nmnist import read_nmnist\n"
            f"a = read_cifar10_dvs({str(tmp_path / 'a.aedat4')!r}); b = read_nmnist({str(tmp_path / 'b.bin')!r})\n"
            "print(len(a), b['t'].tolist())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "[5,", "8198]"]
