"""Hostile inputs through the five console scripts (tests/hostile_corpus.py builds them): each must be refused in
one line with exit status 2 (SIGTERM: 143), without a traceback, a crash, a hang, a half-written output or a
temporary file left behind, and no pickle may run code. The legal stock files among them (`sim/stock-accepted/*`)
must be accepted, and (slow) equal stock netx on Lava run on the original file, in every layer and step.

Most cases call the scripts' `main()` in this process (fast); a handful run the installed console scripts as real
processes: a disk that fills up under the writer (RLIMIT_FSIZE, so every write past the limit fails with EFBIG;
HDF5 used to crash there with SIGSEGV), SIGTERM during an export, a malicious pickle.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

import hostile_corpus

MIN_CASES = 150


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return hostile_corpus.build(tmp_path_factory.mktemp("hostile"))


def run_all(corpus, cases):
    outcomes = [hostile_corpus.run_case(corpus, case) for case in cases]
    counts = hostile_corpus.summary(outcomes)
    print("hostile corpus:", counts)
    bad = [f"{o.kind}: {o.case.name}: {o.detail[:300]}" for o in outcomes if o.kind != "ok"]
    assert not bad, "\n".join(bad)
    assert not corpus.marker.exists(), "a pickle ran code"
    return counts


def test_in_process_cases_are_refused_in_one_line(corpus):
    cases = [c for c in corpus.cases if not c.subprocess and not c.slow]
    assert len(cases) >= MIN_CASES
    assert {c.script for c in cases} == set(hostile_corpus.SCRIPTS)
    counts = run_all(corpus, cases)
    assert counts["ok"] == len(cases)


def test_real_processes_full_disk_sigterm_and_pickles(corpus):
    run_all(corpus, [c for c in corpus.cases if c.subprocess and not c.slow])


@pytest.mark.slow
def test_slow_cases(corpus):
    run_all(corpus, [c for c in corpus.cases if c.slow])


def test_full_tmpfs_is_one_line(tmp_path):
    """A real full file system (a 64 KiB tmpfs; needs the right to mount, else skipped): snn-export is refused in
    one line before it writes, and leaves nothing in the folder."""
    from snnchip.train.checkpoint import save_checkpoint
    from small_models import small_ms_resnet

    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        ckpt = tmp_path / "model.pt"
        save_checkpoint(ckpt, small_ms_resnet())
        case = hostile_corpus.Case("tmpfs", "snn-export", [str(ckpt), "--target", "loihi", "-o",
                                                           str(full / "m.net")], words=("no space",))
        outcome = hostile_corpus.run_case(hostile_corpus.Corpus(full), case)
        assert outcome.kind == "ok", outcome.detail
        assert os.listdir(full) == []
    finally:
        subprocess.run(["umount", str(full)], check=True)


NETX_CHILD = """
import json, sys
import numpy as np
from sim.netx_harness import run_netx_on_lava
run = json.loads(sys.argv[1])
try:
    if "input" in run:
        x = np.load(run["input"])
        blocks = run_netx_on_lava(run["path"], x.shape[-1], x=x)
    else:
        blocks = run_netx_on_lava(run["path"], run["steps"], input_bias=np.load(run["input_bias"]))
except Exception as exc:
    print("NETX-ERROR:", type(exc).__name__ + ":", (str(exc).splitlines() or [""])[0], file=sys.stderr)
    sys.exit(3)
np.savez(sys.argv[2], **{f"{i}_{q}": a for i, block in enumerate(blocks) for q, a in zip(("s", "u", "v"), block)})
"""


class NetxCannot(Exception):
    """Stock netx cannot load or run the file (its error, or that it hung)."""


def _kill_group_but_resource_tracker(group: int) -> None:
    """SIGKILL every process of process group `group` except multiprocessing's resource tracker, which then
    removes the shared-memory segments Lava's processes leave behind (as it does when its parent dies)."""
    import signal
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group or b"resource_tracker" in (entry / "cmdline").read_bytes():
                continue
            os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _netx_blocks(run: dict, out: Path, grace: float = 20.0, timeout: float = 240.0):
    """Stock netx on Lava's CPU simulator, on the original file (tests/sim/netx_harness.py), in a process of its
    own: a list over netx's blocks of (s, u, v), each `(*xyf, steps)`. A Lava process that fails to build leaves
    netx waiting for ever (and says nothing): once a traceback shows the run gets `grace` seconds, else `timeout`
    in all (a run here takes about 10 s), then its process group is killed and NetxCannot says so."""
    import json
    import subprocess
    import sys
    import time

    import numpy as np
    tests = Path(__file__).parent
    with open(out.with_suffix(".err"), "w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", NETX_CHILD, json.dumps(run), str(out)], cwd=tests,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tests)})
        start, failed_at = time.monotonic(), None
        while proc.poll() is None and time.monotonic() - start < timeout:
            time.sleep(0.5)
            if failed_at is None and "Traceback" in Path(err.name).read_text(errors="replace"):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > grace:
                break
        hung = proc.poll() is None
        if hung:
            _kill_group_but_resource_tracker(proc.pid)
            proc.wait()
        text = Path(err.name).read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if hung or proc.returncode != 0:
        mine = [line for line in lines if line.startswith("NETX-ERROR:")]
        # Lava's failed process prints a chained traceback: the cause (mid-line) and the final error
        errors = [line.strip() for line in lines if re.search(r"\w*(Error|Exception): ", line)]
        errors = list(dict.fromkeys([errors[0], errors[-1]])) if errors else []
        why = mine[-1][len("NETX-ERROR: "):] if mine else ("; ".join(errors) or f"exit {proc.returncode}")
        if hung and not mine and not errors:
            why = f"no result after {time.monotonic() - start:.0f} s"
        raise NetxCannot(f"{why}{' (netx hangs: killed)' if hung else ''}")
    data = np.load(out)
    return [tuple(data[f"{i}_{q}"] for q in ("s", "u", "v")) for i in range(len(data.files) // 3)]


def _compare_with_netx(case) -> str:
    """'' when snn-sim's recording equals stock netx's run of the same file in every block's spikes, u and v at
    every step, else what differs. Raises what netx raises when it cannot load or run the file."""
    import json

    import numpy as np
    from snnchip.formats.netx import read_netx
    run = case.netx
    record = Path(run["record"])
    theirs = _netx_blocks(run, record.with_name(record.name + "-netx.npz"))
    index = json.loads((record / "index.json").read_text())["layers"]
    graph = read_netx(run["path"])
    # netx's blocks are the populations with a neuron (a binary input relay is netx's first synapse's input)
    ours = [entry for entry, pop in zip(index, graph.populations) if not pop.neuron.graded]
    if len(ours) != len(theirs):
        return f"{len(ours)} layers with a neuron, netx has {len(theirs)} blocks"
    for entry, block in zip(ours, theirs):
        for q, want in zip(("spikes", "u", "v"), block):
            got = np.load(record / entry[q]).astype(np.int64)
            if got.shape != want.shape:
                return f"{entry['layer']}.{q}: shape {got.shape}, netx {want.shape}"
            bad = np.argwhere(got != want)
            if len(bad):
                return (f"{entry['layer']}.{q}: {len(bad)} of {got.size} values differ from netx, first at step "
                        f"{bad[0][-1]}")
    return ""


@pytest.mark.slow
def test_accepted_stock_files_equal_stock_netx_on_lava(corpus):
    """Every stock file of the corpus that snn-sim accepts, run as the original file by stock lava-dl netx
    (`netx.hdf5.Network`) on Lava's fixed-point CPU simulator: snn-sim's spikes, u and v of every layer equal
    netx's at every step. A file netx cannot load is listed with netx's error."""
    cases = [c for c in corpus.cases if c.netx is not None]
    assert len(cases) >= 25
    accepted, equal, netx_cannot, mismatches = [], [], [], []
    for case in cases:
        outcome = hostile_corpus.run_case(corpus, case)
        if outcome.kind != "ok" or outcome.status != 0:
            mismatches.append(f"{case.name}: snn-sim did not accept it: {outcome.kind} {outcome.detail}")
            continue
        accepted.append(case.name)
        try:
            diff = _compare_with_netx(case)
        except NetxCannot as exc:          # netx cannot load or run the file: listed, not compared
            netx_cannot.append(f"{case.name}: {exc}")
            continue
        (mismatches.append(f"{case.name}: {diff}") if diff else equal.append(case.name))
    print(f"accepted stock files: {len(accepted)}, equal to stock netx on Lava: {len(equal)}, netx cannot load: "
          f"{len(netx_cannot)}, mismatches: {len(mismatches)}")
    for line in netx_cannot:
        print("netx cannot load:", line)
    assert not mismatches, "\n".join(mismatches)
    assert len(equal) >= 20
