"""Hostile inputs through the five console scripts (tests/hostile_corpus.py builds them): each must be refused in
one line with exit status 2 (SIGTERM: 143), without a traceback, a crash, a hang, a half-written output or a
temporary file left behind, and no pickle may run code.

Most cases call the scripts' `main()` in this process (fast); a handful run the installed console scripts as real
processes: a disk that fills up under the writer (RLIMIT_FSIZE, so every write past the limit fails with EFBIG;
HDF5 used to crash there with SIGSEGV), SIGTERM during an export, a malicious pickle.
"""
import os
import subprocess

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
