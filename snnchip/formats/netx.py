"""NetX HDF5, the network file Lava's `lava.lib.dl.netx` loads: `read_netx(path) -> Graph`,
`write_netx(graph, path)`. Reader in `netx_read`, writer in `netx_write`; the format and this project's
extension for residual graphs are described in docs/hdf5-format.md."""
from .netx_read import read_netx
from .netx_write import stock_incompatibilities, write_netx

__all__ = ["read_netx", "write_netx", "stock_incompatibilities"]
