"""Loihi 2 hardware runs through Lava's `Loihi2HwCfg`, available only with Intel's lava-loihi extension.

The public lava-nc wheel has no NeuroCore compiler (`lava.magma.compiler.subcompilers.nc`); without it a run
on Loihi 2 cannot even be compiled, so `loihi2_run_config()` raises a one-line `InputError` saying what is missing.
"""
import importlib.util

from ..errors import InputError

NC_COMPILER = "lava.magma.compiler.subcompilers.nc"


def loihi2_available() -> bool:
    """True if the lava-loihi extension (Lava's NeuroCore compiler) is importable."""
    try:
        return importlib.util.find_spec(NC_COMPILER) is not None
    except ModuleNotFoundError:
        return False


def loihi2_run_config(select_tag: str = "fixed_pt"):
    """A `Loihi2HwCfg` for Loihi 2, or InputError (one line) if lava-loihi is not installed."""
    if not loihi2_available():
        raise InputError(f"Loihi 2 needs Intel's lava-loihi extension ({NC_COMPILER} is not importable); "
                        f"run on Lava's CPU simulator with --run fixed or --run float")
    from lava.magma.core.run_configs import Loihi2HwCfg
    return Loihi2HwCfg(select_tag=select_tag)
