"""NeuroBench's metrics from snnchip's own counts: the `neurobench` block of an energy report.

Key names and normalisation are NeuroBench 2.3's (`neurobench.metrics`; tests/energy/neurobench/ records its own
numbers on a fixed model and input, and the block equals them there):

    Footprint            bytes of the parameters (+ buffers for a torch model), float32
    ParameterCount       weights and biases
    ConnectionSparsity   zero weights / weights, over the synaptic layers
    ActivationSparsity   1 - spikes / (spiking neurons x steps), over all samples
    SynapticOperations   per sample: Effective_MACs (graded inputs), Effective_ACs (binary spikes), each one per
                         (non-zero input, non-zero weight) pair of a real connection; Dense: every real
                         connection at every step
    MembraneUpdates      per sample: every neuron at the first step, then each neuron-step whose membrane
                         (after reset) differs from the previous step's

Where snnchip's structural counts differ (the report's `synops` / `macs` count every synapse reached, zero weights
included), both are reported: `structural` beside the NeuroBench keys. For a NetX graph the parameters are its
projections' weights and its populations' biases, counted as float32 (the file holds integers); snnTorch counts
its neurons' parameters (beta, threshold, ...) as buffers too, which a graph does not have.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

FLOAT_BYTES = 4


def effective_fan_out(weight: np.ndarray, kind: str, src_shape: tuple, stride=(1, 1), padding=(0, 0),
                      dilation=(1, 1), groups: int = 1, tgt_shape: tuple | None = None) -> np.ndarray:
    """Synapses with a non-zero weight leaving each source neuron (real connections only), flat `[src_size]`.
    conv weight `[C_out, C_in/g, kH, kW]` (tgt_shape `(C_out, H', W')`), dense `[F_out, F_in]`."""
    nonzero = np.asarray(weight) != 0
    if kind == "dense":
        return nonzero.sum(axis=0).astype(np.int64)
    _, h, w = (int(s) for s in src_shape)
    c_out, ho, wo = (int(s) for s in tgt_shape)
    kh, kw = nonzero.shape[2:]
    full = [((ho, wo)[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * ((kh, kw)[i] - 1) + 1 for i in range(2)]
    extra = tuple((h, w)[i] - full[i] for i in range(2))
    counts = F.conv_transpose2d(torch.ones(1, c_out, ho, wo, dtype=torch.float64),
                                torch.as_tensor(nonzero, dtype=torch.float64), stride=tuple(stride),
                                padding=tuple(padding), output_padding=extra, groups=int(groups),
                                dilation=tuple(dilation))
    return counts.reshape(-1).round().long().numpy()


def block(counts) -> dict:
    """The NeuroBench block of an `ActivityCounts` (per sample where NeuroBench normalises per sample)."""
    n, steps = counts.samples, counts.steps
    spiking = [nl for nl in counts.neuron_layers if nl.spiking]
    neuron_steps = sum(nl.neurons for nl in spiking) * steps * n
    spikes = sum(nl.spikes for nl in spiking)
    macs = sum(layer.effective_ops for layer in counts.layers if not layer.spike_driven) / n
    acs = sum(layer.effective_ops for layer in counts.layers if layer.spike_driven) / n
    dense = sum(layer.real_synapses for layer in counts.layers) * steps
    weights = sum(layer.weights for layer in counts.layers)
    zeros = sum(layer.zero_weights for layer in counts.layers)
    return {
        "Footprint": counts.footprint_bytes,
        "ParameterCount": counts.parameters,
        "ConnectionSparsity": zeros / weights if weights else 0.0,
        "ActivationSparsity": 1.0 - spikes / neuron_steps if neuron_steps else 0.0,
        "SynapticOperations": {"Effective_MACs": macs, "Effective_ACs": acs, "Dense": float(dense)},
        "MembraneUpdates": sum(nl.membrane_updates for nl in counts.neuron_layers) / n,
        "structural": {"synops": sum(layer.synops for layer in counts.layers) / n,
                       "macs": sum(layer.macs for layer in counts.layers) / n,
                       "note": "every synapse reached, zero weights included (the report's synops and macs)"},
        "conventions": {"footprint": counts.footprint_rule, "normalisation": "per sample, as NeuroBench",
                        "source": "NeuroBench 2.3 metric definitions, computed from snnchip's counters"},
    }
