"""export/: trained model -> deployable graph -> Loihi fixed point.

`recipe.export_model(checkpoint or model, target=...)` is the one export recipe (snn-export, snn-energy and the
benchmarks run it): `lower.lower(model) -> Graph` (float, ideal timing; fuse.py folds norms, compose.py composes
MS-ResNet shortcuts), `timing.pipeline(graph) -> Graph` (one step per hop, aligned delays),
`quantize.quantize(graph, calibration) -> (fixed graph, report.QuantReport)`. The files are written by
`snnchip.formats`. See docs/graph-ir.md and docs/quantisation.md.
"""
