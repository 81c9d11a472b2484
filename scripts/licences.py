"""The licence of every installed distribution snnchip needs, from the distributions' own metadata.

Run-time roots: `requirements.txt`, the `pyproject.toml` dependencies, and torch, lava-nc and lava-dl (installed
by scripts/setup.sh). Test-only roots: `requirements-test.txt` and `requirements-test-nodeps.txt` (the latter
installed without dependencies, so only the package itself). Each root's `Requires-Dist` entries (no extras) are
followed through the installed distributions; a requirement declared but not installed (lava-dl's torchvision,
installed with --no-deps) is listed apart.

A licence is read, in this order, from `License-Expression`, a one-line `License` field, the `License ::`
classifiers, the first line of a longer `License` field, then the licence files in the .dist-info folder.

    .venv/bin/python scripts/licences.py                      # print the table (Markdown)
    .venv/bin/python scripts/licences.py --write docs/dependencies.md
    .venv/bin/python scripts/licences.py --check              # exit 1 on a GPL or unknown run-time licence
"""
import argparse
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SETUP_INSTALLED = ("torch", "lava-nc", "lava-dl")      # installed by scripts/setup.sh, not via requirements.txt
DOC_HEADER = "| package | version | licence | read from | needed by | use |"


def _names(path: Path) -> list:
    """Requirement names of a requirements file (comments and blank lines skipped)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line).name for line in lines if line]


def roots() -> tuple:
    """(run-time root names, test-only root names followed into their dependencies, test-only without deps)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    run = _names(ROOT / "requirements.txt") + [Requirement(r).name for r in project["dependencies"]]
    nodeps = ROOT / "requirements-test-nodeps.txt"
    return (run + list(SETUP_INSTALLED), _names(ROOT / "requirements-test.txt"),
            _names(nodeps) if nodeps.exists() else [])


def _requires(dist) -> list:
    """Names a distribution requires without extras, for this interpreter."""
    env = dict(default_environment(), extra="")
    out = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(env):
            out.append(req.name)
    return out


def closure(names, follow: bool = True) -> tuple:
    """({canonical name: (distribution, parent name or 'root')}, {missing name: parent}) reachable from names."""
    found, missing, todo = {}, {}, [(n, "root") for n in names]
    while todo:
        name, parent = todo.pop(0)
        key = canonicalize_name(name)
        if key in found or key in missing:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            missing[key] = parent
            continue
        found[key] = (dist, parent)
        if follow:
            todo += [(r, dist.metadata["Name"]) for r in _requires(dist)]
    return found, missing


_FILE_PATTERNS = [                                      # (regex on a licence file's text, licence)
    (r"GNU LESSER GENERAL PUBLIC LICENSE", "LGPL"),
    (r"GNU AFFERO GENERAL PUBLIC LICENSE", "AGPL"),
    (r"GNU GENERAL PUBLIC LICENSE\s+Version (\d)", "GPL-{}"),
    (r"Apache License\s+Version 2\.0", "Apache-2.0"),
    (r"Mozilla Public License,? (version|Version) 2\.0", "MPL-2.0"),
    (r"^\s*MIT License|Permission is hereby granted, free of charge", "MIT"),
    (r"Redistribution and use in source and binary forms", "BSD"),
]


def _from_files(dist):
    files = [f for f in (dist.files or []) if ".dist-info" in str(f.parent) and
             re.match(r"(LICEN[CS]E|COPYING|NOTICE)", f.name, re.I)]
    for f in files:
        text = Path(dist.locate_file(f)).read_text(errors="replace")
        for pattern, name in _FILE_PATTERNS:
            m = re.search(pattern, text, re.M)
            if m:
                return name.format(*m.groups()[:1]) if "{}" in name else name, f"file {f.name}"
    return None


def licence_of(dist) -> tuple:
    """(licence, where it was read) of an installed distribution; ('unknown', '') when nothing says."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return expression.strip(), "License-Expression"
    field = (meta.get("License") or "").strip()
    if field.upper() == "UNKNOWN":
        field = ""
    if field and "\n" not in field and len(field) <= 80:
        return field, "License"
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                   if c.startswith("License ::") and c.split("::")[-1].strip() != "OSI Approved"]
    if classifiers:
        return " / ".join(classifiers), "classifier"
    if field:
        return field.splitlines()[0].strip(), "License (first line)"
    return _from_files(dist) or ("unknown", "")


def is_gpl(licence: str) -> bool:
    """True for GPL and AGPL (strong copyleft); LGPL, MPL and the permissive licences are not."""
    text = re.sub(r"LGPL\S*|(Lesser|Library) General Public License", "", licence, flags=re.I)
    return bool(re.search(r"\bA?GPL|General Public License", text, flags=re.I))


def rows() -> list:
    """[(name, version, licence, source, parent, use)] of the run-time closure, then the test-only additions."""
    run_roots, test_roots, nodeps_roots = roots()
    run, _ = closure(run_roots)
    test, _ = closure(test_roots)
    test_nodeps, _ = closure(nodeps_roots, follow=False)
    out = []
    for use, found in (("run time", run), ("test only", {**test, **test_nodeps})):
        for key in sorted(found):
            if use == "test only" and key in run:
                continue
            dist, parent = found[key]
            licence, source = licence_of(dist)
            out.append((dist.metadata["Name"], dist.version, licence, source, parent, use))
    return out


def declared_not_installed() -> dict:
    """{name: parent} of run-time requirements that are declared but not installed."""
    return closure(roots()[0])[1]


def markdown() -> str:
    table = [DOC_HEADER, "|---|---|---|---|---|---|"]
    table += [f"| {n} | {v} | {lic.replace('|', '/')} | {src} | {parent} | {use} |"
              for n, v, lic, src, parent, use in rows()]
    missing = ", ".join(f"{n} (declared by {p})" for n, p in sorted(declared_not_installed().items()))
    return f"""# Dependencies and their licences

Every installed distribution snnchip needs, with its licence as its own metadata states it (generated by
`scripts/licences.py` from the installed `.venv`; "needed by" is the first package found to require it, "root"
a direct dependency). Run-time: what `requirements.txt`, the `pyproject.toml` dependencies and `scripts/setup.sh`
(torch, lava-nc, lava-dl) install, and everything they require. Test only: what `requirements-test.txt` and
`requirements-test-nodeps.txt` add for the test suite; nothing under `snnchip/` imports them.

No run-time licence is GPL or AGPL (checked by `tests/test_licences.py` and `scripts/licences.py --check`);
LGPL (lava-nc, in part) and MPL-2.0 (tqdm, in part) are weak copyleft: using them as installed libraries places
no condition on snnchip's own licence. Tonic (GPL-3.0) is test-only: the reader tests compare snnchip's
AEDAT 2.0, AEDAT4 and N-MNIST decoding with its `tonic.io` functions; it is installed without its dependencies.

pytest is listed at run time because lava-dl declares it. Declared but not installed (setup.sh installs Lava
with `--no-deps`; nothing snnchip runs imports them): {missing or "none"}.

Regenerate after changing the requirements (and `constraints.txt`):

    .venv/bin/python scripts/licences.py --write docs/dependencies.md
    .venv/bin/python -m pytest -q tests/test_licences.py

{chr(10).join(table)}
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write", metavar="FILE", help="write the Markdown table to FILE")
    p.add_argument("--check", action="store_true", help="exit 1 if a run-time licence is GPL/AGPL or unknown")
    args = p.parse_args(argv)
    if args.check:
        bad = [r for r in rows() if r[5] == "run time" and (is_gpl(r[2]) or r[2] == "unknown")]
        for name, version, licence, source, parent, _ in bad:
            print(f"{name} {version}: {licence} ({source or 'no licence metadata'}; needed by {parent})")
        print(f"{len(bad)} run-time distributions with a GPL or unknown licence")
        return 1 if bad else 0
    text = markdown()
    if args.write:
        from snnchip.fileio import write_text
        write_text(args.write, text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
