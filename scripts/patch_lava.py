"""Apply (idempotently) and verify the three fixes that lava-nc 0.10.0 and lava-dl 0.6.0 need on Python 3.11.

1. lava.magma.compiler.var_model declares dataclass fields whose default is a mutable instance
   (`x: ByteEncoder = ByteEncoder()`), which Python 3.11 rejects: rewrite them to `field(default_factory=...)`.
2. lava.lib.dl.slayer imports its object-detection module, which imports torchvision (no CPU wheel exists):
   make that one import optional.
3. lava.magma.runtime.message_infrastructure.multiprocessing calls `mp.set_start_method('fork')` at import,
   which raises once anything has used multiprocessing's default context (tqdm's first progress bar creates
   a multiprocessing lock, so `quantize` before `build_lava` failed): keep the context when it already forks.

Usage: python scripts/patch_lava.py [--check]   (--check verifies only, exit 1 if a fix is missing)
"""
import argparse
import importlib.util
import re
import sys
from pathlib import Path

VAR_MODEL = "lava/magma/compiler/var_model.py"
SLAYER_INIT = "lava/lib/dl/slayer/__init__.py"
OBD_IMPORT = "from . import object_detection as obd\n"
OBD_OPTIONAL = ("try:  # snnchip: object detection needs torchvision, which has no CPU wheel\n"
                "    from . import object_detection as obd\n"
                "except ImportError:\n"
                "    obd = None\n")
MP_INFRA = "lava/magma/runtime/message_infrastructure/multiprocessing.py"
START_FORK = "    mp.set_start_method('fork')\n"
START_FORK_TOLERANT = ("    # snnchip: tolerate a default context already used (for example by tqdm's lock)\n"
                       "    if mp.get_start_method(allow_none=True) != 'fork':\n"
                       "        mp.set_start_method('fork', force=True)\n")
FIELD_RE = re.compile(r"^(\s+\w+: (\w+)) = \2\(\)$", re.M)


def site_file(rel: str) -> Path:
    spec = importlib.util.find_spec(rel.split("/")[0])
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"error: package '{rel.split('/')[0]}' is not installed; run `make setup`")
    for root in spec.submodule_search_locations:
        path = Path(root).parent / rel
        if path.exists():
            return path
    sys.exit(f"error: {rel} not found in site-packages; run `make setup`")


def fix_var_model(text: str) -> str:
    text = FIELD_RE.sub(r"\1 = field(default_factory=\2)", text)
    if "field(default_factory" in text and not re.search(r"^from dataclasses import .*\bfield\b", text, re.M):
        text = text.replace("from dataclasses import dataclass", "from dataclasses import dataclass, field", 1)
    return text


def fix_slayer_init(text: str) -> str:
    return text.replace(OBD_IMPORT, OBD_OPTIONAL) if OBD_OPTIONAL not in text else text


def fix_mp_start(text: str) -> str:
    return text.replace(START_FORK, START_FORK_TOLERANT) if START_FORK_TOLERANT not in text else text


FIXES = {VAR_MODEL: fix_var_model, SLAYER_INIT: fix_slayer_init, MP_INFRA: fix_mp_start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify only; do not modify files")
    args = parser.parse_args()
    missing = []
    for rel, fix in FIXES.items():
        path = site_file(rel)
        text = path.read_text()
        fixed = fix(text)
        if fixed == text:
            continue
        if args.check:
            missing.append(rel)
        else:
            tmp = path.with_suffix(".py.snnchip-tmp")
            tmp.write_text(fixed)
            tmp.replace(path)
            print(f"patched {path}")
    if missing:
        print(f"error: Lava fix not applied to {', '.join(missing)}; run `make setup`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
