"""formats/: the network files snnchip reads and writes, as their own layer below export, sim and deploy.

NetX HDF5 (`netx`: lava-dl's network file, stock vocabulary plus this project's extension for residual graphs,
docs/hdf5-format.md), the ONNX step graph (`onnx_step`) and NIR (`nir`). Each reader returns a `snnchip.graph.Graph`
and each writer takes one; they import only `snnchip.graph`, `snnchip.loihi`, `snnchip.errors` and
`snnchip.fileio`.
"""
