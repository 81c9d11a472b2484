"""NIR in and out: `read_nir` (NIR file or `nir.NIRGraph` -> float Graph) and `write_nir` / `to_nir` (float Graph ->
NIR). See docs/nir.md for the node table and how continuous-time parameters map to the discrete update."""
from .nir_read import DEFAULT_DT, read_nir
from .nir_write import to_nir, write_nir

__all__ = ["DEFAULT_DT", "read_nir", "write_nir", "to_nir"]
