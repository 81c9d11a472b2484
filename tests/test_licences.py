"""The licences of snnchip's dependencies, read from the installed distributions' metadata (scripts/licences.py):
no GPL at run time, every licence known, and docs/dependencies.md saying the same."""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def licences():
    spec = importlib.util.spec_from_file_location("licences", ROOT / "scripts" / "licences.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpl_detection(licences):
    for text in ("GPL-3.0-only", "gpl", "GPL-2", "GNU General Public License v3 (GPLv3)", "AGPL-3.0-or-later",
                 "MIT OR GPL-2.0"):
        assert licences.is_gpl(text), text
    for text in ("LGPL-2.1-or-later", "(BSD-3-Clause), (LGPL-2.1-or-later)", "MPL-2.0 AND MIT", "BSD License",
                 "GNU Lesser General Public License v2 or later (LGPLv2+)", "Apache-2.0 WITH LLVM-exception"):
        assert not licences.is_gpl(text), text


def test_no_gpl_and_no_unknown_licence_at_run_time(licences):
    rows = licences.rows()
    run = {name: (licence, parent) for name, _, licence, _, parent, use in rows if use == "run time"}
    for needed in ("numpy", "torch", "lava-nc", "lava-dl", "aedat", "h5py"):
        assert needed in run, needed
    bad = {name: v for name, v in run.items() if licences.is_gpl(v[0]) or v[0] == "unknown"}
    assert not bad, f"GPL or unknown licence at run time: {bad}"
    assert "tonic" not in run


def test_dependency_table_is_current(licences):
    doc = (ROOT / "docs" / "dependencies.md").read_text()
    table = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and not set(cells[0]) <= set("-") and cells[0] != "package":
            table[cells[0]] = (cells[2], cells[5])
    # versions may differ (another torch build); the packages, their licences and their use may not
    expect = {name: (licence.replace("|", "/"), use) for name, _, licence, _, _, use in licences.rows()}
    assert table == expect, "docs/dependencies.md is stale: run scripts/licences.py --write docs/dependencies.md"
    assert re.search(r"^## Licence\n", (ROOT / "README.md").read_text(), re.M)
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
