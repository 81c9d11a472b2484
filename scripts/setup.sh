#!/usr/bin/env bash
# Idempotent setup: creates .venv and installs the pinned stack (torch CPU, lava-nc, lava-dl, the rest),
# then applies and verifies the Lava fixes. A second run with nothing changed only verifies (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.snnchip-setup
want=$(cat constraints.txt requirements.txt requirements-test.txt requirements-test-nodeps.txt pyproject.toml scripts/setup.sh scripts/patch_lava.py | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && "$VENV/bin/python" -m snnchip.stack >/dev/null 2>&1; then
  echo "setup: .venv is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

# torch: keep a torch the user already has (e.g. a CUDA build); otherwise the pinned CPU build.
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: keeping installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
  grep -v '^torch==' constraints.txt > "$VENV/constraints-notorch.txt"
  CONSTRAINTS=$VENV/constraints-notorch.txt
else
  echo "setup: installing $(grep '^torch==' constraints.txt)"
  pip install "$(grep '^torch==' constraints.txt | sed 's/+cpu//')"
  CONSTRAINTS=constraints.txt
fi

echo "setup: installing dependencies"
pip install -r requirements.txt -c "$CONSTRAINTS"
echo "setup: installing test-only packages"
pip install -r requirements-test.txt -c "$CONSTRAINTS"
pip install --no-deps -r requirements-test-nodeps.txt -c "$CONSTRAINTS"
# Lava declares Requires-Python <3.11 and pins an old CUDA torch: install without its metadata checks.
echo "setup: installing lava-nc and lava-dl"
pip install --no-deps --ignore-requires-python -c "$CONSTRAINTS" lava-nc lava-dl
pip install --no-deps --no-build-isolation -e .

"$VENV/bin/python" scripts/patch_lava.py
"$VENV/bin/python" -m snnchip.stack
echo "$want" > "$STAMP"
echo "setup: done"
