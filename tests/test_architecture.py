"""The architecture's two rules, checked on the source (docs/architecture.md):

1. Loihi's arithmetic has one definition, `snnchip/loihi.py`: no other module of `snnchip/` writes one of its
   numbers as a literal (4096, 4095, 2**17, 2**23, 2**24, the 13-bit bias and 9-bit weight edges, netx's 62-step
   delay limit) or re-derives its shifts (`x << 6`, `x >> 12`, `x * 64`, `x / 4096`).
2. Stages import only downward: the import-linter contract in pyproject.toml (`lint-imports`).
"""
import ast
import operator
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "snnchip"
CHIP_MODULE = PACKAGE / "loihi.py"
# Values that only Loihi's registers give meaning to (see snnchip/loihi.py for what each is).
CHIP_VALUES = {4095, 4096, -4096, (1 << 17) - 1, 1 << 17, (1 << 23) - 1, 1 << 23, -(1 << 23) + 1, 1 << 24,
               -256, 254, 62}
CHIP_SHIFTS = {6, 12}             # act_shift / vth_shift, decay_shift
CHIP_FACTORS = {64, 4096}         # the same shifts written as products or quotients
FOLD = {ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.Pow: operator.pow, ast.Add: operator.add,
        ast.Sub: operator.sub, ast.Mult: operator.mul}


def _value(node):
    """The number a constant expression evaluates to (e.g. `(1 << 23) - 1`), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _value(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp) and type(node.op) in FOLD:
        left, right = _value(node.left), _value(node.right)
        if left is not None and right is not None:
            try:
                return FOLD[type(node.op)](left, right)
            except (TypeError, ValueError, OverflowError):
                return None
    return None


def chip_literals(source: str) -> list[tuple[int, str]]:
    """(line, what) for every chip number written as a literal in `source`. A constant expression is judged by
    its value as a whole (`(1 << 23) - 1`), not by its parts."""
    found = []

    def pattern(node):
        """A shift by 6 or 12, or a product / quotient with 64 or 4096, in this BinOp itself."""
        if not isinstance(node, ast.BinOp):
            return None
        right, left = _value(node.right), _value(node.left)
        if isinstance(node.op, (ast.LShift, ast.RShift)) and right in CHIP_SHIFTS:
            return f"shift by {right}"
        if isinstance(node.op, (ast.Mult, ast.Div, ast.FloorDiv)) and CHIP_FACTORS & {right, left}:
            return f"product or quotient with {(CHIP_FACTORS & {right, left}).pop()}"
        return None

    class Finder(ast.NodeVisitor):
        def generic_visit(self, node):
            value = _value(node) if isinstance(node, (ast.Constant, ast.UnaryOp, ast.BinOp)) else None
            if value is not None:               # a constant expression is one finding at most
                parts = [what for part in ast.walk(node) if (what := pattern(part))]
                if value in CHIP_VALUES or parts:
                    found.append((node.lineno, parts[0] if parts else f"the value {value}"))
                return
            what = pattern(node)
            if what:
                found.append((node.lineno, what))
            super().generic_visit(node)

    Finder().visit(ast.parse(source))
    return sorted(set(found))


def test_the_guard_finds_chip_literals():
    sample = ("a = x * 64\nb = y << 6\nc = (1 << 23) - 1\nd = 4096\ne = v >> 12\nf = -256\n"
              "g = w * (1 << 6)\nh = 3 * 64\nok = 2 ** 10 + x * 63 + (y << 5)\n")
    assert sorted({line for line, _ in chip_literals(sample)}) == [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py") if p != CHIP_MODULE),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_chip_literal_outside_loihi(path):
    found = chip_literals(path.read_text())
    assert not found, (f"{path.relative_to(PACKAGE.parent)}: chip arithmetic written out instead of imported "
                       f"from snnchip.loihi: " + ", ".join(f"line {line}: {what}" for line, what in found))


def test_stages_import_only_downward():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=PACKAGE.parent, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
