"""A corpus of hostile inputs for the five console scripts, built in a folder, and a runner that classifies what
each script did with each (tests/test_hostile_corpus.py).

Every case is a console script and its arguments. What a case must get: a one-line error (no traceback), the
expected exit status (2 for bad input), no output file left half-written, no temporary file left behind, and no
code run from a pickle. The runner sorts every outcome into: ok, traceback (a Python traceback or an internal
error), crash (killed by a signal), hang (past the time limit), silent (exit 0 where a refusal was expected),
status (another wrong exit status), leftover (a temporary or half-written file), words (the error line does not
name what it should).

Seeds, all real files: lava-dl's shipped `tiny.net` (conv) and `mnist.net` (dense), a NetX file with this
project's extension written by `write_netx`, a checkpoint written by `save_checkpoint`, and lava-dl's input bias.
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import h5py
import numpy as np

from lava_dl_files import stock_netx_dir

TEMP_SUFFIX = ".snnchip-tmp"
SCRIPTS = ("snn-train", "snn-export", "snn-sim", "snn-deploy", "snn-energy")


@dataclass
class Case:
    """One hostile input: `script argv...` must exit `expect`, say `words` on stderr, leave `absent` absent and
    `unchanged` unchanged. `subprocess`: run as a real process (with `fsize`: RLIMIT_FSIZE in bytes, a disk that
    fills up; with `sigterm`: SIGTERM that many seconds after the script's first output)."""
    name: str
    script: str
    argv: list
    expect: int = 2
    words: tuple = ()
    absent: tuple = ()
    unchanged: tuple = ()
    subprocess: bool = False
    fsize: Optional[int] = None
    sigterm: Optional[float] = None
    slow: bool = False


@dataclass
class Outcome:
    case: Case
    kind: str                 # ok, traceback, crash, hang, silent, status, leftover, words
    status: Optional[int]
    stderr: str
    seconds: float
    detail: str = ""


@dataclass
class Corpus:
    root: Path
    cases: list = field(default_factory=list)
    marker: Path = None       # a pickle that runs code would create this file

    def add(self, *args, **kwargs) -> None:
        self.cases.append(Case(*args, **kwargs))


# -- seeds ------------------------------------------------------------------------------------------------------

def _fixed_graph():
    """A small stock-compatible fixed graph with this project's extension: LIF input -> conv -> conv -> dense ->
    dense readout."""
    from snnchip.graph import Graph, Neuron, Population, Projection
    rng = np.random.default_rng(0)

    def lif(vth, du=4095, dv=1024):
        return Neuron(threshold=vth, du=du, dv=dv)
    pops = [Population("in", (2, 9, 8), lif(5), is_input=True),
            Population("c1", (6, 5, 3), lif(40, du=3000, dv=2048), bias=rng.integers(-20, 40, (6, 1, 1)),
                       bias_exp=6),
            Population("c2", (5, 5, 3), lif(30), bias=rng.integers(-5, 30, (5, 5, 3)), bias_exp=6),
            Population("d1", (12,), lif(25, dv=512), bias=rng.integers(-5, 20, 12), bias_exp=6),
            Population("out", (3,), Neuron(threshold=None, du=4095, dv=0), is_output=True)]
    projs = [Projection("in->c1", "in", "c1", "conv", rng.integers(-60, 80, (6, 2, 3, 3)), stride=(2, 2),
                        padding=(1, 0)),
             Projection("c1->c2", "c1", "c2", "conv", rng.integers(-40, 60, (5, 6, 3, 3)), padding=(1, 1)),
             Projection("c2->d1", "c2", "d1", "dense", rng.integers(-30, 40, (12, 75))),
             Projection("d1->out", "d1", "out", "dense", rng.integers(-100, 120, (3, 12)))]
    return Graph(pops, projs, timing="pipelined", fixed=True,
                 meta={"depth": {p.name: i for i, p in enumerate(pops)}, "T": 6})


class _RunsCode:
    """Unpickling this runs `touch MARKER`: a malicious pickle."""
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _copy_edit(src: Path, dst: Path, edit: Callable) -> Path:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as handle:
        edit(handle)
    return dst


def _set(key: str, value) -> Callable:
    def edit(handle):
        if key in handle:
            del handle[key]
        handle[key] = value
    return edit


def _delete(key: str) -> Callable:
    def edit(handle):
        del handle[key]
    return edit


def _attr(node: str, key: str, value) -> Callable:
    def edit(handle):
        handle[node].attrs["snnchip_" + key] = value
    return edit


def _root_attr(key: str, value) -> Callable:
    def edit(handle):
        handle["snnchip"].attrs[key] = value
    return edit


# -- the corpus -------------------------------------------------------------------------------------------------

def build(root: Path) -> Corpus:
    """Write every hostile input under `root` and return the cases."""
    from snnchip.formats.netx import write_netx
    from snnchip.train.checkpoint import save_checkpoint
    from small_models import small_ms_resnet

    root = Path(root)
    stock = stock_netx_dir()
    tiny, mnist, bias = stock / "tiny.net", stock / "mnist.net", stock / "gts" / "tinynet" / "input_bias.npy"
    corpus = Corpus(root, marker=root / "PICKLE-RAN-CODE")
    add = corpus.add
    nets = root / "nets"
    nets.mkdir()
    sim_args = ["--input-bias", str(bias), "--steps", "3"]

    # -- stock tiny.net (conv), edited: through snn-sim (record mode) ------------------------------------------
    conv_w = (24, 3, 5, 5, 1)
    stock_edits = {
        "weight-1e30": (_set("layer/1/weight", np.full(conv_w, 1e30)), "weight"),
        "weight-minus-1e30": (_set("layer/1/weight", np.full(conv_w, -1e30)), "weight"),
        "weight-1000": (_set("layer/1/weight", np.full(conv_w, 1000.0)), "weights"),
        "weight-2^40": (_set("layer/1/weight", np.full(conv_w, 2.0 ** 40)), "weights"),
        "weight-minus-300": (_set("layer/1/weight", np.full(conv_w, -300.0)), "weights"),
        "weight-half": (_set("layer/1/weight", np.full(conv_w, 0.5)), "weight"),
        "weight-nan": (_set("layer/1/weight", np.full(conv_w, np.nan)), "weight"),
        "weight-inf": (_set("layer/1/weight", np.full(conv_w, np.inf)), "weight"),
        "weight-uint64-max": (_set("layer/1/weight", np.full(conv_w, np.iinfo(np.uint64).max, np.uint64)),
                              "weight"),
        "weight-string": (_set("layer/1/weight", np.array([b"abc"])), "weight"),
        "weight-complex": (_set("layer/1/weight", np.ones(conv_w, np.complex64)), "weight"),
        "weight-3d": (_set("layer/1/weight", np.ones((24, 3, 5))), "weight"),
        "weight-scalar": (_set("layer/1/weight", 1.0), "weight"),
        "weight-empty": (_set("layer/1/weight", h5py.Empty("f")), "weight"),
        "weight-wrong-channels": (_set("layer/1/weight", np.ones((24, 4, 5, 5, 1))), "groups"),
        "weight-missing": (_delete("layer/1/weight"), "weight"),
        "weight-group": (lambda h: (h.__delitem__("layer/1/weight"), h.create_group("layer/1/weight")), "weight"),
        "vth-2^60": (_set("layer/1/neuron/vThMant", 2 ** 60), "threshold"),
        "vth-2^17+1": (_set("layer/1/neuron/vThMant", 2 ** 17 + 1), "threshold"),
        "vth-2^24": (_set("layer/1/neuron/vThMant", 2 ** 24), "threshold"),
        "vth-negative": (_set("layer/1/neuron/vThMant", -3), "threshold"),
        "vth-2^40": (_set("layer/1/neuron/vThMant", 2.0 ** 40), "threshold"),
        "vth-nan": (_set("layer/1/neuron/vThMant", np.nan), "vThMant"),
        "vth-fraction": (_set("layer/1/neuron/vThMant", 12.5), "vThMant"),
        "vth-string": (_set("layer/1/neuron/vThMant", b"ten"), "vThMant"),
        "vth-missing": (_delete("layer/1/neuron/vThMant"), "vThMant"),
        "idecay-negative": (_set("layer/1/neuron/iDecay", -5), "du"),
        "idecay-5000": (_set("layer/1/neuron/iDecay", 5000), "du"),
        "idecay-1e300": (_set("layer/1/neuron/iDecay", 1e300), "iDecay"),
        "vdecay-negative": (_set("layer/1/neuron/vDecay", -1), "dv"),
        "vdecay-5000": (_set("layer/1/neuron/vDecay", 5000), "dv"),
        "bias-2^40": (_set("layer/1/bias", np.full(24, 2.0 ** 40)), "bias"),
        "bias-1e30": (_set("layer/1/bias", np.full(24, 1e30)), "bias"),
        "bias-nan": (_set("layer/1/bias", np.full(24, np.nan)), "bias"),
        "bias-5000": (_set("layer/1/bias", np.full(24, 5000.0)), "bias"),
        "bias-wrong-length": (_set("layer/1/bias", np.zeros(7)), "bias"),
        "message-bits-100": (_set("layer/1/neuron/messageBits", 100), "messageBits"),
        "message-bits-negative": (_set("layer/1/neuron/messageBits", -3), "messageBits"),
        "message-bits-25": (_set("layer/2/neuron/messageBits", 25), "messageBits"),
        "stride-0": (_set("layer/1/stride", np.array([0, 0])), "stride"),
        "stride-negative": (_set("layer/1/stride", np.array([-2, 2])), "stride"),
        "stride-3-entries": (_set("layer/1/stride", np.array([1, 2, 3])), "stride"),
        "stride-huge": (_set("layer/1/stride", np.array([2 ** 62, 2])), "shape"),
        "dilation-0": (_set("layer/1/dilation", np.array([0, 0])), "dilation"),
        "padding-negative": (_set("layer/1/padding", np.array([-1, -1])), "padding"),
        "padding-huge": (_set("layer/1/padding", np.array([2 ** 40, 0])), "shape"),
        "groups-0": (_set("layer/1/groups", 0), "groups"),
        "groups-negative": (_set("layer/1/groups", -1), "groups"),
        "groups-5": (_set("layer/1/groups", 5), "groups"),
        "shape-mismatch": (_set("layer/2/shape", np.array([35, 1, 1])), "shape"),
        "shape-zero": (_set("layer/0/shape", np.array([3, 0, 16])), "shape"),
        "shape-negative": (_set("layer/0/shape", np.array([3, -16, 16])), "shape"),
        "shape-2d": (_set("layer/0/shape", np.array([16, 16])), "shape"),
        "shape-huge": (_set("layer/0/shape", np.array([3, 2 ** 40, 16])), "shape"),
        "type-pool": (_set("layer/1/type", np.array([b"pool"])), "pool"),
        "type-empty": (_set("layer/1/type", np.array([b""])), "type"),
        "type-missing": (_delete("layer/1/type"), "type"),
        "neuron-rf": (_set("layer/2/neuron/type", b"RF"), "RF"),
        "neuron-missing": (_delete("layer/1/neuron"), "neuron"),
        "layer-gap": (lambda h: h.move("layer/2", "layer/7"), "layer names"),
        "layer-empty": (lambda h: [h["layer"].__delitem__(k) for k in list(h["layer"])], "empty"),
        "layer-dataset": (lambda h: (h.__delitem__("layer"), h.__setitem__("layer", np.zeros(3))), "layer"),
        "input-not-first": (lambda h: (h.move("layer/0", "layer/x"), h.move("layer/1", "layer/0"),
                                       h.move("layer/x", "layer/1")), "layer"),
        "conv-delay": (_set("layer/1/delay", np.ones(24)), "delay"),
        "unwritten-100000x100000": (lambda h: (h.__delitem__("layer/1/weight"),
                                               h.create_dataset("layer/1/weight", (100000, 100000), "f8")),
                                    "memory"),
    }
    for name, (edit, word) in stock_edits.items():
        path = _copy_edit(tiny, nets / f"tiny-{name}.net", edit)
        add(f"sim/stock/{name}", "snn-sim", [str(path), *sim_args], words=(path.name, word))
    # the same files through snn-deploy's reader (--plan), a sample of them
    for name in ("weight-1e30", "vth-2^60", "message-bits-100", "dilation-0", "groups-0", "stride-0",
                 "unwritten-100000x100000", "weight-1000"):
        path = nets / f"tiny-{name}.net"
        add(f"deploy-plan/stock/{name}", "snn-deploy", [str(path), "--plan"], words=(path.name,))
        add(f"deploy-run/stock/{name}", "snn-deploy", [str(path), "--dataset", "digits-dvs", "--samples", "1"],
            words=(path.name,))
        add(f"energy/stock/{name}", "snn-energy", [str(path), "--dataset", "digits-dvs", "--T", "4",
                                                   "--samples", "1"], words=(path.name,))

    # -- stock mnist.net (dense) ------------------------------------------------------------------------------
    with h5py.File(mnist, "r") as handle:
        d_shape = handle["layer/1/weight"].shape
    dense_edits = {
        "dense-weight-300": (_set("layer/1/weight", np.full(d_shape, 300.0)), "weights"),
        "dense-weight-1e30": (_set("layer/1/weight", np.full(d_shape, 1e30)), "weight"),
        "dense-weight-shape": (_set("layer/1/weight", np.ones((3, 3))), "weight"),
        "dense-delay-100": (_set("layer/1/delay", np.full(d_shape[0], 100)), "delay"),
        "dense-delay-negative": (_set("layer/1/delay", np.full(d_shape[0], -1)), "delay"),
        "dense-delay-length": (_set("layer/1/delay", np.zeros(7)), "delay"),
        "dense-delay-nan": (_set("layer/1/delay", np.full(d_shape[0], np.nan)), "delay"),
        "dense-rec-without-weight-rec": (_set("layer/1/type", np.array([b"dense_rec"])), "weight_rec"),
        "dense-shape-zero": (_set("layer/1/shape", np.array([0])), "shape"),
    }
    for name, (edit, word) in dense_edits.items():
        path = _copy_edit(mnist, nets / f"mnist-{name}.net", edit)
        add(f"deploy-plan/stock/{name}", "snn-deploy", [str(path), "--plan"], words=(path.name, word))

    # -- damaged and foreign containers ------------------------------------------------------------------------
    data = tiny.read_bytes()
    damaged = {"empty": b"", "one-byte": data[:1], "truncated-8": data[:8], "truncated-10pct": data[:len(data) // 10],
               "truncated-half": data[:len(data) // 2], "truncated-99pct": data[:len(data) * 99 // 100],
               "header-flipped": data[:16] + bytes(b ^ 0xFF for b in data[16:64]) + data[64:],
               "random": np.random.default_rng(1).bytes(4096), "text": b"this is not a network\n" * 20,
               "zip": _zip_bytes(), "npy": _npy_bytes(np.zeros(3)), "pickle": pickle.dumps({"layer": 1})}
    for name, raw in damaged.items():
        path = nets / f"damaged-{name}.net"
        path.write_bytes(raw)
        add(f"sim/damaged/{name}", "snn-sim", [str(path), *sim_args], words=(path.name,))
        add(f"deploy-plan/damaged/{name}", "snn-deploy", [str(path), "--plan"], words=(path.name,))
    with h5py.File(nets / "foreign.h5", "w") as handle:
        handle["data"] = np.arange(10)
    add("sim/damaged/foreign-hdf5", "snn-sim", [str(nets / "foreign.h5"), *sim_args], words=("layer",))
    add("sim/damaged/missing", "snn-sim", [str(nets / "nope.net"), *sim_args], words=("nope.net",))
    add("sim/damaged/directory", "snn-sim", [str(nets), *sim_args], words=(str(nets),))

    # -- this project's extension, edited ---------------------------------------------------------------------
    ours = nets / "ours.net"
    write_netx(_fixed_graph(), ours)
    with h5py.File(ours, "r") as handle:
        layers = {handle["layer"][k].attrs.get("snnchip_population"): f"layer/{k}" for k in handle["layer"]}
    c1, d1, out = layers["c1"], layers["d1"], layers["out"]
    conv_edge, dense_edge = "snnchip/projections/0", "snnchip/projections/2"
    ext_edits = {
        "timing-sideways": (_root_attr("timing", "sideways"), "sideways"),
        "timing-number": (_root_attr("timing", 3), "timing"),
        "fixed-string": (_root_attr("fixed", "yes"), "fixed"),
        "version-2": (_root_attr("version", 2), "version"),
        "version-string": (_root_attr("version", "one"), "version"),
        "format-foreign": (_root_attr("format", "other"), "extension"),
        "meta-not-json": (_root_attr("meta", "{not json"), "ours"),
        "threshold-2^40": (_attr(c1, "threshold", 2 ** 40), "threshold"),
        "threshold-nan": (_attr(c1, "threshold", np.nan), "threshold"),
        "threshold-string": (_attr(c1, "threshold", "high"), "threshold"),
        "threshold-vector": (_attr(c1, "threshold", np.array([1, 2])), "threshold"),
        "threshold-disagrees-with-stock": (_set(c1 + "/neuron/vThMant", 41), "vThMant"),
        "idecay-disagrees-with-stock": (_set(c1 + "/neuron/iDecay", 100), "iDecay"),
        "du-5000": (lambda h: (h[c1].attrs.__setitem__("snnchip_du", 5000),
                               _set(c1 + "/neuron/iDecay", 5001)(h)), "du"),
        "dv-negative": (lambda h: (h[c1].attrs.__setitem__("snnchip_dv", -1),
                                   _set(c1 + "/neuron/vDecay", -1)(h)), "dv"),
        "reset-maybe": (_attr(c1, "reset", "maybe"), "reset"),
        "reset-value-nan": (_attr(c1, "reset_value", np.nan), "reset_value"),
        "reset-value-2^30": (_attr(c1, "reset_value", 2 ** 30), "reset value"),
        "bias-exp-99": (_attr(c1, "bias_exp", 99), "bias exponent"),
        "bias-exp-fraction": (_attr(c1, "bias_exp", 1.5), "bias_exp"),
        "bias-shape-wrong": (_attr(d1, "bias_shape", np.array([5])), "bias"),
        "graded-string": (_attr(c1, "graded", "maybe"), "graded"),
        "shape-zero": (_attr(d1, "shape", np.array([0])), "shape"),
        "shape-string": (_attr(d1, "shape", "twelve"), "shape"),
        "shape-2^70": (_attr(d1, "shape", np.array([2.0 ** 70])), "shape"),
        "population-number": (_attr(d1, "population", 7), "population"),
        "no-output": (_attr(out, "is_output", False), "output"),
        "no-input": (_attr(layers["in"], "is_input", False), "input"),
        "scale-nan": (_attr(d1, "scale", np.nan), "scale"),
        "weight-exp-99": (_attr(dense_edge, "weight_exp", 99), "weight exponent"),
        "weight-exp-minus-99": (_attr(dense_edge, "weight_exp", -99), "weight exponent"),
        "weight-exp-fraction": (_attr(dense_edge, "weight_exp", 0.5), "weight_exp"),
        "message-bits-minus-3": (_attr(dense_edge, "num_message_bits", -3), "message bits"),
        "message-bits-100": (_attr(dense_edge, "num_message_bits", 100), "message bits"),
        "conv-groups-0": (_attr(conv_edge, "groups", 0), "groups"),
        "conv-groups-3": (_attr(conv_edge, "groups", 3), "groups"),
        "conv-stride-0": (_attr(conv_edge, "stride", np.array([0, 0])), "stride"),
        "conv-stride-negative": (_attr(conv_edge, "stride", np.array([-2, 2])), "stride"),
        "conv-stride-1": (_attr(conv_edge, "stride", np.array([1, 1])), "differs"),
        "conv-dilation-0": (_attr(conv_edge, "dilation", np.array([0, 1])), "dilation"),
        "conv-padding-negative": (_attr(conv_edge, "padding", np.array([-1, 0])), "padding"),
        "conv-padding-nan": (_attr(conv_edge, "padding", np.array([np.nan, 0])), "padding"),
        "kind-sparse": (_attr(dense_edge, "kind", "sparse"), "sparse"),
        "source-unknown": (_attr(dense_edge, "source", "ghost"), "ghost"),
        "target-input": (_attr(dense_edge, "target", "in"), "input"),
        "edge-weight-shape": (_set(dense_edge + "/weight", np.ones((3, 3))), "weight"),
        "edge-weight-1e30": (_set(dense_edge + "/weight", np.full((12, 75), 1e30)), "weight"),
        "edge-delay-negative": (_set(dense_edge + "/delay", -1), "delay"),
        "edge-delay-fraction": (_set(dense_edge + "/delay", 0.5), "delay"),
        "edge-missing": (lambda h: h.move("snnchip/projections/3", "snnchip/projections/9"), "projection"),
    }
    for name, (edit, word) in ext_edits.items():
        path = _copy_edit(ours, nets / f"ours-{name}.net", edit)
        add(f"sim/extension/{name}", "snn-sim", [str(path), "--input", str(root / "ours-input.npy")],
            words=(path.name, word))
    np.save(root / "ours-input.npy", np.zeros((8, 9, 2, 6), np.int64))      # (x, y, f, t) of the (2, 9, 8) input
    for name in ("timing-sideways", "conv-groups-0", "threshold-disagrees-with-stock", "weight-exp-99"):
        path = nets / f"ours-{name}.net"
        add(f"deploy-run/extension/{name}", "snn-deploy", [str(path), "--dataset", "digits-dvs", "--samples", "1"],
            words=(path.name,))

    # -- bad --input arrays for snn-sim (tiny.net's input is (x, y, f) = (16, 16, 3)) --------------------------
    inputs = root / "inputs"
    inputs.mkdir()
    arrays = {"npz": None, "object-pickle": np.array([{"a": 1}], dtype=object), "float-half": np.full((16, 16, 3, 4), 0.5),
              "nan": np.full((16, 16, 3, 4), np.nan), "inf": np.full((16, 16, 3, 4), np.inf),
              "strings": np.array(["a", "b"]), "scalar": np.array(3), "one-d": np.zeros(16),
              "wrong-shape": np.zeros((5, 5, 3, 4)), "complex": np.zeros((16, 16, 3, 4), np.complex64),
              "huge-value": np.full((16, 16, 3, 4), 1e30), "uint64-max": np.full((16, 16, 3, 4), 2 ** 64 - 1,
                                                                                   np.uint64)}
    for name, array in arrays.items():
        path = inputs / f"{name}.npy"
        if array is None:
            np.savez(inputs / "x.npz", a=np.zeros(3))
            path = inputs / "x.npz"
        elif array.dtype == object:
            np.save(path, array, allow_pickle=True)
        else:
            np.save(path, array)
        add(f"sim/input/{name}", "snn-sim", [str(tiny), "--input", str(path)], words=(path.name,))
    claims = inputs / "claims-1TiB.npy"            # a 128-byte .npy whose header claims 1 TiB
    with open(claims, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (1 << 20, 1 << 17)})
    add("sim/input/claims-1TiB", "snn-sim", [str(tiny), "--input", str(claims)], words=(claims.name,))
    full = inputs / "ok.npy"
    np.save(full, np.zeros((16, 16, 3, 4), np.int64))
    truncated = inputs / "truncated.npy"
    truncated.write_bytes(full.read_bytes()[:300])
    add("sim/input/truncated", "snn-sim", [str(tiny), "--input", str(truncated)], words=(truncated.name,))
    add("sim/input/missing", "snn-sim", [str(tiny), "--input", str(inputs / "nope.npy")], words=("nope.npy",))
    add("sim/input/bias-wrong-shape", "snn-sim", [str(tiny), "--input-bias", str(full), "--steps", "2"],
        words=(full.name,))
    pickled = inputs / "runs-code.npy"
    pickled.write_bytes(pickle.dumps(_RunsCode(corpus.marker)))
    add("sim/input/pickle-runs-code", "snn-sim", [str(tiny), "--input", str(pickled)], words=(pickled.name,))

    # -- snn-sim arguments ------------------------------------------------------------------------------------
    bad_sim_args = {"steps-0": ["--steps", "0"], "steps-negative": ["--steps", "-1"],
                    "steps-1e9": ["--steps", "1000000000"], "steps-word": ["--steps", "deep"],
                    "reset-interval-0": ["--steps", "3", "--reset-interval", "0"],
                    "reset-interval-huge": ["--steps", "3", "--reset-interval", "99999999999999999999"],
                    "reset-offset-huge": ["--steps", "3", "--reset-interval", "2", "--reset-offset",
                                          "99999999999999999999"],
                    "device-tpu": ["--steps", "3", "--device", "tpu"],
                    "device-cuda-99": ["--steps", "3", "--device", "cuda:99"],
                    "threads-0": ["--steps", "3", "--threads", "0"]}
    for name, extra in bad_sim_args.items():
        add(f"sim/args/{name}", "snn-sim", [str(tiny), "--input-bias", str(bias), *extra])
    add("sim/args/nothing", "snn-sim", [str(tiny)])
    add("sim/args/dataset-and-input", "snn-sim", [str(tiny), "--dataset", "digits-dvs", "--input", str(full)])
    add("sim/args/dataset-unknown", "snn-sim", [str(tiny), "--dataset", "imagenet-dvs"], words=("imagenet-dvs",))
    add("sim/args/batch-size-0", "snn-sim", [str(tiny), "--dataset", "digits-dvs", "--batch-size", "0"])
    add("sim/args/samples-0", "snn-sim", [str(tiny), "--dataset", "digits-dvs", "--samples", "0"])
    add("sim/args/shape-mismatch-dataset", "snn-sim", [str(tiny), "--dataset", "digits-dvs", "--samples", "2"],
        words=("digits-dvs",))

    # -- output paths -----------------------------------------------------------------------------------------
    outs = root / "outs"
    outs.mkdir()
    a_file = outs / "a-file"
    a_file.write_text("keep me\n")
    add("sim/out/record-onto-file", "snn-sim", [str(tiny), *sim_args, "--record", str(a_file)],
        unchanged=(a_file,), words=(a_file.name,))
    add("sim/out/record-under-file", "snn-sim", [str(tiny), *sim_args, "--record", str(a_file / "sub")],
        unchanged=(a_file,), words=(a_file.name,))
    add("sim/out/record-in-proc", "snn-sim", [str(tiny), *sim_args, "--record", "/proc/snnchip-record"],
        absent=(Path("/proc/snnchip-record"),))

    # -- checkpoints ------------------------------------------------------------------------------------------
    ckpts = root / "ckpts"
    ckpts.mkdir()
    good = ckpts / "good.pt"
    save_checkpoint(good, small_ms_resnet())
    raw = good.read_bytes()
    import torch
    payload = torch.load(good, weights_only=True)

    def saved(name, edit):
        p = {**payload, "config": dict(payload["config"]), "state_dict": dict(payload["state_dict"])}
        p = edit(p) or p
        path = ckpts / f"{name}.pt"
        torch.save(p, path)
        return path

    ckpt_files = {
        "empty": _write(ckpts / "empty.pt", b""), "truncated-half": _write(ckpts / "truncated.pt", raw[:len(raw) // 2]),
        "truncated-100": _write(ckpts / "truncated-100.pt", raw[:100]),
        "random": _write(ckpts / "random.pt", np.random.default_rng(2).bytes(2000)),
        "text": _write(ckpts / "text.pt", b"not a checkpoint"), "zip-garbage": _write(ckpts / "zip.pt", _zip_bytes()),
        "hdf5": _copy(tiny, ckpts / "tiny.pt"),
        "no-format-tag": saved("no-format", lambda p: p.pop("format")),
        "version-2": saved("version-2", lambda p: p.__setitem__("version", 2)),
        "config-none": saved("config-none", lambda p: p.__setitem__("config", None)),
        "config-unknown-key": saved("config-unknown", lambda p: p["config"].__setitem__("colour", "blue")),
        "config-negative-width": saved("config-negative", lambda p: p["config"].__setitem__("widths", [-4, 8, 8])),
        "config-T-0": saved("config-T0", lambda p: p["config"].__setitem__("T", 0)),
        "config-arch-word": saved("config-arch", lambda p: p["config"].__setitem__("arch", "deep")),
        "state-dict-list": saved("state-list", lambda p: p.__setitem__("state_dict", [1, 2])),
        "state-dict-wrong-shape": saved("state-shape", lambda p: p["state_dict"].__setitem__(
            next(k for k in p["state_dict"] if k.endswith("weight")), torch.zeros(3))),
        "state-dict-nan": saved("state-nan", lambda p: p.__setitem__("state_dict", {
            k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
            for k, v in p["state_dict"].items()})),
        "state-dict-inf-weight": saved("state-inf", lambda p: p["state_dict"].__setitem__(
            next(k for k in p["state_dict"] if k.endswith("weight") and p["state_dict"][k].ndim > 1),
            torch.full_like(p["state_dict"][next(k for k in p["state_dict"] if k.endswith("weight") and
                                                 p["state_dict"][k].ndim > 1)], float("inf")))),
        "not-a-dict": _torch_save(ckpts / "list.pt", [1, 2, 3]),
    }
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        ckpt_files[f"pickle-runs-code-protocol-{protocol}"] = _write(
            ckpts / f"evil-{protocol}.pt", pickle.dumps({"format": "snnchip-checkpoint", "x": _RunsCode(corpus.marker)},
                                                        protocol=protocol))
    ckpt_files["zip-pickle-runs-code"] = _evil_zip(good, ckpts / "evil-zip.pt", corpus.marker)
    for name, path in ckpt_files.items():
        out_net = ckpts / f"{name}.net"
        add(f"export/ckpt/{name}", "snn-export", [str(path), "--target", "loihi", "-o", str(out_net)],
            absent=(out_net,), words=(path.name,))
    for name in ("truncated-half", "pickle-runs-code-protocol-2", "zip-pickle-runs-code", "config-none",
                 "state-dict-nan"):
        path = ckpt_files[name]
        add(f"energy/ckpt/{name}", "snn-energy", [str(path), "--dataset", "digits-dvs", "--samples", "1"],
            words=(path.name,))
        add(f"train/resume/{name}", "snn-train", ["--init-from", str(path), "--epochs", "1", "--out",
                                                  str(root / "train-out" / name)], words=(path.name,))

    # -- snn-export arguments and output paths ----------------------------------------------------------------
    ro = root / "readonly"
    ro.mkdir()
    export_bad = {
        "target-missing": ([str(good)], ()), "target-x": ([str(good), "--target", "x"], ()),
        "source-missing": ([str(ckpts / "nope.pt"), "--target", "loihi"], ("nope.pt",)),
        "source-directory": ([str(ckpts), "--target", "loihi"], ()),
        "out-directory": ([str(good), "--target", "loihi", "-o", str(outs)], (outs.name,)),
        "out-missing-folder": ([str(good), "--target", "loihi", "-o", str(outs / "no" / "x.net")], ("no",)),
        "out-under-file": ([str(good), "--target", "loihi", "-o", str(a_file / "x.net")], (a_file.name,)),
        "out-onto-source": ([str(_copy(good, ckpts / "self.pt")), "--target", "loihi", "-o",
                             str(ckpts / "self.pt")], ("self.pt",)),
        "out-in-proc": ([str(good), "--target", "loihi", "-o", "/proc/snnchip.net"], ("/proc/snnchip.net",)),
        "onnx-out-directory": ([str(good), "--target", "onnx", "-o", str(outs)], (outs.name,)),
        "nir-out-directory": ([str(good), "--target", "nir", "-o", str(outs)], (outs.name,)),
        "calibrate-onnx": ([str(good), "--target", "onnx", "--calibrate", "digits-dvs"], ("calibrate",)),
        "calibrate-unknown": ([str(good), "--target", "loihi", "--calibrate", "imagenet-dvs", "--dry-run"],
                              ("imagenet-dvs",)),
        "samples-negative": ([str(good), "--target", "loihi", "--calibrate", "digits-dvs", "--samples", "-1",
                              "--dry-run"], ("samples",)),
        "steps-on-checkpoint": ([str(good), "--target", "loihi", "--steps", "4"], ("steps",)),
        "dt-word": ([str(good), "--target", "nir", "--dt", "deep"], ()),
    }
    for name, (argv, words) in export_bad.items():
        add(f"export/args/{name}", "snn-export", argv, words=words, unchanged=(a_file,))
    add("export/out/existing-file-replaced", "snn-export", [str(good), "--target", "loihi", "-o",
                                                           str(_write(outs / "old.net", b"old"))], expect=0)

    # -- NIR sources --------------------------------------------------------------------------------------------
    nirs = root / "nir"
    nirs.mkdir()
    good_nir = nirs / "good.nir"
    from snnchip.export.cli import main as export_main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        export_main([str(good), "--target", "nir", "-o", str(good_nir)])
    nir_raw = good_nir.read_bytes()
    nir_files = {"truncated": _write(nirs / "truncated.nir", nir_raw[:len(nir_raw) // 2]),
                 "empty": _write(nirs / "empty.nir", b""), "netx": _copy(tiny, nirs / "tiny.nir"),
                 "text": _write(nirs / "text.nir", b"nir")}
    for name, path in nir_files.items():
        add(f"export/nir/{name}", "snn-export", [str(path), "--target", "loihi", "-o", str(nirs / f"{name}.net")],
            absent=(nirs / f"{name}.net",), words=(path.name,))
    for name, extra in {"dt-nan": ["--dt", "nan"], "dt-negative": ["--dt", "-1"], "dt-inf": ["--dt", "inf"],
                        "steps-0": ["--steps", "0", "--calibrate", "digits-dvs"],
                        "steps-1e9": ["--steps", "1000000000", "--calibrate", "digits-dvs"]}.items():
        add(f"export/nir-args/{name}", "snn-export", [str(good_nir), "--target", "loihi", "--dry-run", *extra])

    # -- snn-energy and snn-deploy arguments --------------------------------------------------------------------
    energy_bad = {
        "T-negative": [str(good), "--dataset", "digits-dvs", "--T", "-3"],
        "T-0": [str(good), "--dataset", "digits-dvs", "--T", "0"],
        "T-1e9": [str(good), "--dataset", "digits-dvs", "--T", "1000000000"],
        "batch-size-0": [str(good), "--dataset", "digits-dvs", "--batch-size", "0"],
        "no-dataset": [str(good)], "missing-network": [str(ckpts / "nope.pt"), "--dataset", "digits-dvs"],
        "input-shape-word": ["--arch", "ms_resnet20", "--input-shape", "3,deep,32"],
        "input-shape-negative": ["--arch", "ms_resnet20", "--input-shape", "3,-32,32"],
        "arch-word": ["--arch", "ms_resnetdeep", "--input-shape", "3,32,32"],
        "arch-and-network": ["--arch", "ms_resnet20", "--input-shape", "3,32,32", str(good)],
        "energy-model-missing": [str(good), "--dataset", "digits-dvs", "--energy-model", str(root / "nope.json")],
        "energy-model-garbage": [str(good), "--dataset", "digits-dvs", "--energy-model",
                                 str(_write(root / "model.json", b"{not json"))],
        "output-directory": ["--arch", "ms_resnet20", "--input-shape", "3,32,32", "-o", str(outs)],
        "markdown-missing-folder": [str(good), "--dataset", "digits-dvs", "--samples", "1", "--markdown",
                                    str(outs / "no" / "r.md")],
        "compare-fixed-on-netx": [str(tiny), "--dataset", "digits-dvs", "--compare-fixed"],
        "ann-frames-0": [str(good), "--dataset", "digits-dvs", "--ann-frames", "0"],
    }
    for name, argv in energy_bad.items():
        add(f"energy/args/{name}", "snn-energy", argv)
    deploy_bad = {
        "no-dataset": [str(tiny)], "samples-0": [str(tiny), "--dataset", "digits-dvs", "--samples", "0"],
        "T-1e9": [str(ours), "--dataset", "digits-dvs", "--T", "1000000000"],
        "T-negative": [str(ours), "--dataset", "digits-dvs", "--T", "-2"],
        "chip-unknown": [str(tiny), "--plan", "--chip", "loihi9"],
        "chip-garbage-file": [str(tiny), "--plan", "--chip", str(_write(root / "chip.json", b"[1, 2"))],
        "weight-bits-0": [str(tiny), "--plan", "--weight-bits", "0"],
        "weight-bits-99": [str(tiny), "--plan", "--weight-bits", "99"],
        "run-gpu": [str(tiny), "--dataset", "digits-dvs", "--run", "gpu"],
        "shape-mismatch": [str(tiny), "--dataset", "digits-dvs", "--samples", "1"],
        "missing-net": [str(nets / "nope.net"), "--plan"],
    }
    for name, argv in deploy_bad.items():
        add(f"deploy/args/{name}", "snn-deploy", argv)

    # -- snn-train arguments (argument parsing; training robustness is tested with the trainer) ---------------
    for name, argv in {"lr-word": ["--lr", "fast"], "epochs-word": ["--epochs", "many"],
                       "dataset-unknown": ["--dataset", "imagenet-dvs"], "depth-word": ["--depth", "deep"],
                       "neuron-unknown": ["--neuron", "hh"], "resume-missing": ["--resume", str(ckpts / "nope.pt")],
                       "init-from-text": ["--init-from", str(ckpt_files["text"])]}.items():
        add(f"train/args/{name}", "snn-train", [*argv, "--out", str(root / "train-out" / name)])

    # -- damaged event files (N-MNIST) --------------------------------------------------------------------------
    events = {"empty": b"", "truncated-event": bytes([1, 2, 3, 4, 5, 6, 7]),
              "outside-sensor": bytes([40, 40, 0, 0, 1]), "only-overflow": bytes([0, 240, 0, 0, 1]) * 3}
    for name, raw in events.items():
        folder = root / "nmnist" / name
        for split in ("Train", "Test"):
            (folder / split / "0").mkdir(parents=True)
            (folder / split / "0" / "00001.bin").write_bytes(raw)
        add(f"sim/events/nmnist-{name}", "snn-sim", [str(tiny), "--dataset", "nmnist", "--data-root", str(folder)],
            words=("00001.bin",))
    add("sim/events/nmnist-missing-root", "snn-sim", [str(tiny), "--dataset", "nmnist", "--data-root",
                                                      str(root / "nmnist" / "nope")])

    # -- real processes: a disk that fills up, SIGTERM, the installed console scripts ---------------------------
    for name, (script, argv, out_path, fsize, slow) in {
            "export-loihi": ("snn-export", [str(good), "--target", "loihi", "-o", str(outs / "fs.net")],
                             outs / "fs.net", 20000, False),
            "export-nir": ("snn-export", [str(good), "--target", "nir", "-o", str(outs / "fs.nir")],
                           outs / "fs.nir", 20000, True),
            "sim-record": ("snn-sim", [str(tiny), *sim_args, "--record", str(outs / "fs-record")],
                           outs / "fs-record" / "index.json", 4000, False)}.items():
        add(f"process/full-disk/{name}", script, argv, subprocess=True, fsize=fsize, absent=(out_path,), slow=slow)
    add("process/sigterm/export-calibrating", "snn-export", [str(good), "--target", "loihi", "--calibrate",
                                                             "digits-dvs", "-o", str(outs / "term.net")],
        subprocess=True, sigterm=2.0, expect=143, absent=(outs / "term.net",))
    add("process/script/pickle-runs-code", "snn-export", [str(ckpt_files["pickle-runs-code-protocol-4"]),
                                                          "--target", "loihi"], subprocess=True)
    add("process/script/stock-1e30", "snn-sim", [str(nets / "tiny-weight-1e30.net"), *sim_args], subprocess=True,
        words=("weight",))
    add("process/script/bad-int", "snn-sim", [str(tiny), "--steps", "deep"], subprocess=True)
    return corpus


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def _torch_save(path: Path, obj) -> Path:
    import torch
    torch.save(obj, path)
    return path


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a network")
    return buffer.getvalue()


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _evil_zip(good: Path, path: Path, marker: Path) -> Path:
    """A torch zip checkpoint whose data.pkl is replaced by a pickle that runs `touch marker`."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps({"format": "snnchip-checkpoint", "x": _RunsCode(marker)}, protocol=2)
            dst.writestr(item, data)
    return path


# -- running ----------------------------------------------------------------------------------------------------

def _main(script: str):
    import importlib
    module = {"snn-train": "snnchip.train.cli", "snn-export": "snnchip.export.cli", "snn-sim": "snnchip.sim.cli",
              "snn-deploy": "snnchip.deploy.cli", "snn-energy": "snnchip.energy.cli"}[script]
    return importlib.import_module(module).main


def _in_process(case: Case) -> tuple[Optional[int], str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = _main(case.script)(case.argv)
        except SystemExit as exc:             # argparse
            status = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:          # the wrapper let something through: a traceback for the user
            import traceback
            traceback.print_exc(file=err)
            status = None
    return status, err.getvalue()


def _as_process(case: Case, timeout: float) -> tuple[Optional[int], str]:
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / case.script), *case.argv]
    preexec = None
    if case.fsize is not None:
        def preexec():
            import resource
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write beyond the limit fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (case.fsize, case.fsize))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=preexec,
                            env=env)
    chunks: list = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(proc.stderr.fileno(), 4096),
                                                                b"")), daemon=True)
    reader.start()
    if case.sigterm is not None:
        # SIGTERM once the script is at work (its first output, a progress bar), then `sigterm` seconds later
        deadline = time.monotonic() + timeout
        while not chunks and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(case.sigterm)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None, "hang"
    reader.join(timeout=10)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def _temp_files(root: Path) -> list:
    return [p for p in root.rglob("*") if TEMP_SUFFIX in p.name]


def run_case(corpus: Corpus, case: Case, timeout: float = 120.0) -> Outcome:
    before = {p: p.read_bytes() for p in case.unchanged if p.is_file()}
    start = time.monotonic()
    status, err = _as_process(case, timeout) if case.subprocess else _in_process(case)
    seconds = time.monotonic() - start
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or ": error:" in line or
              line.startswith("terminated") or line.startswith("interrupted")]

    def outcome(kind, detail=""):
        return Outcome(case, kind, status, err, seconds, detail)
    if status is None and err == "hang":
        return outcome("hang")
    if "Traceback" in err or "internal error" in err or status == 1 and case.expect != 1:
        return outcome("traceback", err.strip().splitlines()[-1] if err.strip() else "")
    if status is None or status < 0 or status > 128 and status != case.expect:
        return outcome("crash", f"status {status}")
    if status == 0 and case.expect != 0:
        return outcome("silent", "exit 0")
    if status != case.expect:
        return outcome("status", f"status {status}, expected {case.expect}: {lines[-1:] }")
    leftovers = _temp_files(corpus.root) + [p for p in case.absent if p.exists()]
    leftovers += [p for p, data in before.items() if not p.is_file() or p.read_bytes() != data]
    if leftovers:
        for p in _temp_files(corpus.root):
            p.unlink()
        return outcome("leftover", ", ".join(map(str, leftovers)))
    if case.expect != 0:
        if len(errors) != 1:
            return outcome("words", f"{len(errors)} error lines: {lines[-3:]}")
        missing = [w for w in case.words if w.lower() not in errors[0].lower()]
        if missing:
            return outcome("words", f"missing {missing} in: {errors[0]}")
    return outcome("ok")


def summary(outcomes: list) -> dict:
    """Counts per kind, and the number of cases."""
    counts = {"cases": len(outcomes)}
    for kind in ("ok", "traceback", "crash", "hang", "silent", "status", "leftover", "words"):
        counts[kind] = sum(o.kind == kind for o in outcomes)
    return counts
