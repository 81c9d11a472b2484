import numpy as np
import pytest
import torch

from snnchip.train.data import dataset_info, load_dataset
from snnchip.train.data import digits_dvs
from snnchip.train.data.dvs_emulator import DVSSensor, emulate


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("digits")


def test_emulator_ramp_matches_hand_computed_crossings():
    # one pixel, threshold exactly 0.25, samples 1000 us apart. Log intensity 0, .3, .6, .9, 1.2: ON crossings
    # of .25, .5, .75, 1.0 interpolated inside each step (at 833, 1667, 2500, 3333 us). Then it drops to .2 and
    # stays: OFF at .75 inside the step (4450 us), then one pending OFF per step at the step's start (.5 at
    # 5000 us, .25 at 6000 us); .2 is within a threshold of .25, so nothing more.
    sensor = DVSSensor(1, 1, threshold=0.25, threshold_sigma=0.0, refractory_us=0)
    levels = [0.0, 0.3, 0.6, 0.9, 1.2, 0.2, 0.2, 0.2, 0.2]
    times = np.arange(len(levels)) * 1000
    events, offsets = emulate(sensor, lambda k: np.full((1, 1, 1), levels[k]), times, seed=0)
    assert offsets.tolist() == [0, 7]
    assert events["p"].tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert events["t"].tolist() == [833, 1667, 2500, 3333, 4450, 5000, 6000]
    assert (events["x"] == 0).all() and (events["y"] == 0).all()


def test_emulator_refractory_period_holds_pixel_silent():
    sensor = DVSSensor(1, 1, threshold=0.1, threshold_sigma=0.0, refractory_us=2500)
    levels = np.linspace(0, 2.0, 21)            # 0.1 per 1000 us: would fire every step without refractoriness
    events, _ = emulate(sensor, lambda k: np.full((1, 1, 1), levels[k]), np.arange(21) * 1000, seed=0)
    assert len(events) > 3
    assert np.diff(events["t"]).min() >= 2500


def test_thresholds_mismatch_seeded():
    s = DVSSensor(16, 16)
    a, b, c = s.thresholds(0), s.thresholds(0), s.thresholds(1)
    assert a.shape == (2, 16, 16) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.mean() - 0.25) < 0.01 and 0.02 < a.std() < 0.04


def test_record_deterministic_and_seed_dependent():
    from sklearn.datasets import load_digits
    images = load_digits().images[:12] / 16
    e1, o1 = digits_dvs.record(images, seed=3)
    e2, o2 = digits_dvs.record(images, seed=3)
    e3, _ = digits_dvs.record(images, seed=4)
    assert np.array_equal(e1, e2) and np.array_equal(o1, o2)
    assert not np.array_equal(e1, e3)
    for i in range(12):
        ev = e1[o1[i]:o1[i + 1]]
        assert len(ev) > 300                                     # the saccades make edges fire
        assert np.all(np.diff(ev["t"]) >= 0)
        assert ev["t"].min() >= 0 and ev["t"].max() <= digits_dvs.DURATION_US
        assert set(np.unique(ev["p"])) == {0, 1}
        assert ev["x"].max() < 16 and ev["y"].max() < 16
        # all three saccades produce events
        assert np.all(np.bincount(ev["t"] // digits_dvs.SACCADE_US, minlength=3)[:3] > 50)


def test_split_is_per_class_every_fifth():
    labels = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    test = digits_dvs.split_mask(labels)
    assert np.flatnonzero(test).tolist() == [6, 11]          # 5th and 10th zero; class 1 has only two samples


def test_load_dataset_shapes_split_cache(root):
    info = dataset_info("digits-dvs")
    assert (info.in_channels, info.num_classes, info.input_size, info.T) == (2, 10, (16, 16), 8)
    train = load_dataset("digits-dvs", "train", root=root)
    test = load_dataset("digits-dvs", "test", root=root)
    assert (len(train), len(test)) == (1442, 355)
    assert np.bincount(test.labels).min() >= 34       # 178..183 per class, every fifth
    x, y = train[0]
    assert x.shape == (2, 16, 16, 8) and x.dtype == torch.float32 and isinstance(y, int)
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}        # binary spikes by default
    counts, _ = load_dataset("digits-dvs", "train", root=root, binary=False)[0]
    assert counts.max() > 1 and torch.equal(counts > 0, x > 0)
    # frames are the sample's raw events integrated by time over the 300 ms recording
    ev = train.events(0)
    assert counts.sum() == len(ev)
    assert counts[1].sum() == (ev["p"] == 1).sum()
    t_bin = ev["t"] * 8 // (digits_dvs.DURATION_US + 1)
    assert counts[..., 3].sum() == (t_bin == 3).sum()
    (cache,) = (root / "digits-dvs").glob("*.npz")
    assert not list((root / "digits-dvs").glob("*.tmp"))
    other = load_dataset("digits-dvs", "train", root=root, T=4)
    assert other[0][0].shape == (2, 16, 16, 4)
    assert len(list((root / "digits-dvs").glob("*.npz"))) == 1   # T does not change the recording
    import pickle
    copy = pickle.loads(pickle.dumps(test))                     # DataLoader workers under 'spawn' pickle it
    assert torch.equal(copy[7][0], test[7][0]) and copy[7][1] == test[7][1]


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    # the cache logic on a 20-digit recording (a full build is exercised by the test above)
    from sklearn.datasets import load_digits
    digits = load_digits()

    def small_build(seed=0):
        events, offsets = digits_dvs.record(digits.images[:20] / 16, seed)
        labels = digits.target[:20]
        return dict(events=events, offsets=offsets, labels=labels, test=digits_dvs.split_mask(labels),
                    params=np.array(digits_dvs.json.dumps(digits_dvs._params(seed), sort_keys=True)))

    builds = []
    monkeypatch.setattr(digits_dvs, "build", lambda seed=0: builds.append(seed) or small_build(seed))
    first = digits_dvs.load(tmp_path)
    assert builds == [0]
    cache = digits_dvs.cache_path(tmp_path, 0)
    good = cache.read_bytes()
    assert np.array_equal(digits_dvs.load(tmp_path)["events"], first["events"]) and builds == [0]   # cached
    for bad in (good[: len(good) // 2], b"", b"not an npz file at all"):
        cache.write_bytes(bad)
        again = digits_dvs.load(tmp_path)
        assert np.array_equal(again["events"], first["events"])
        assert cache.read_bytes() == good
    assert builds == [0, 0, 0, 0]
    assert not list(cache.parent.glob("*.tmp"))


def test_augment_rolls_without_flip(root):
    torch.manual_seed(0)
    plain = load_dataset("digits-dvs", "train", root=root)
    aug = load_dataset("digits-dvs", "train", root=root, augment=True)
    x, _ = plain[5]
    shifted = [aug[5][0] for _ in range(20)]
    assert any(not torch.equal(s, x) for s in shifted)
    for s in shifted:
        assert s.sum() == x.sum()
        assert any(torch.equal(torch.roll(x, (dy, dx), (1, 2)), s) for dy in range(-2, 3) for dx in range(-2, 3))


def test_unknown_option_and_name():
    from snnchip.errors import InputError
    with pytest.raises(InputError, match="unknown dataset"):
        dataset_info("mnist-dvs")
    with pytest.raises(InputError, match="split"):
        load_dataset("digits-dvs", "val")
