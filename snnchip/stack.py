"""Checks that the installed torch + Lava stack works, so a broken environment gives one line, not a traceback.

`python -m snnchip.stack` verifies everything and exits non-zero with a one-line message naming the repair.
Modules that need Lava call `require_lava()` before importing it.
"""
import importlib
import sys

from .errors import StackError

REPAIR = "run `make setup` in the repository root"


def _try_import(module: str, what: str) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise StackError(f"{what} is not installed (no module '{exc.name}'); {REPAIR}") from None
    except ValueError as exc:
        if "mutable default" in str(exc):
            raise StackError(f"{what} lacks its Python 3.11 dataclass fix; {REPAIR}") from None
        raise StackError(f"{what} failed to import ({exc}); {REPAIR}") from None
    except ImportError as exc:
        if "torchvision" in str(exc) or "object_detection" in str(exc):
            raise StackError(f"{what} lacks its optional-torchvision fix; {REPAIR}") from None
        raise StackError(f"{what} failed to import ({exc}); {REPAIR}") from None


def require_torch() -> None:
    """Raise StackError unless torch imports."""
    _try_import("torch", "torch")


def require_lava() -> None:
    """Raise StackError unless lava-nc (magma) and lava-dl (slayer, netx) import with their fixes."""
    require_torch()
    _try_import("lava.magma.core.run_configs", "lava-nc")
    _try_import("lava.lib.dl.slayer", "lava-dl (slayer)")
    _try_import("lava.lib.dl.netx", "lava-dl (netx)")


def main() -> int:
    try:
        require_lava()
        for module in ("h5py", "onnx", "onnxruntime", "numpy"):
            _try_import(module, module)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    import numpy
    import torch
    if int(numpy.__version__.split(".")[0]) >= 2:
        print(f"error: numpy {numpy.__version__} installed but lava-nc needs numpy<2; {REPAIR}", file=sys.stderr)
        return 1
    print(f"stack ok: torch {torch.__version__}, numpy {numpy.__version__}, lava-nc and lava-dl import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
