"""export/: trained model -> deployable graph -> Loihi fixed point and files.

`lower.lower(model) -> Graph` (float, ideal timing; fuse.py folds norms, compose.py composes MS-ResNet shortcuts),
`timing.pipeline(graph) -> Graph` (one step per hop, aligned delays), `quantize.quantize(graph, calibration)
-> (fixed graph, report.QuantReport)`, writers in netx_hdf5.py / onnx_export.py, and the `snn-export` CLI (cli.py).
See docs/graph-ir.md and docs/quantisation.md.
"""
