"""The reference readers the tests compare with: Tonic's `tonic.io` (GPL-3.0, test-only) and dv-processing's."""
import functools
import importlib.util
from importlib.metadata import distribution


@functools.lru_cache(maxsize=1)
def tonic_io():
    """Tonic's `tonic.io` module, loaded from its file: it needs only numpy (and `aedat` for read_aedat4), while
    `import tonic` imports every Tonic dataset and with them librosa and importRosbag, which are not installed
    (requirements-test-nodeps.txt)."""
    path = distribution("tonic").locate_file("tonic/io.py")
    spec = importlib.util.spec_from_file_location("tonic_io_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dv_read_events(path):
    """(resolution (W, H), [N, 4] int64 rows t, x, y, polarity) of an AEDAT4 file, read by dv-processing."""
    import dv_processing as dv
    import numpy as np
    recording = dv.io.MonoCameraRecording(str(path))
    batches = []
    while True:
        batch = recording.getNextEventBatch()
        if batch is None:
            break
        ev = batch.numpy()
        batches.append(np.stack([ev["timestamp"], ev["x"], ev["y"], ev["polarity"]], axis=1).astype(np.int64))
    return recording.getEventResolution(), np.concatenate(batches)
