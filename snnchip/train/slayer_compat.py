"""A plain sequential network of CUBA-compatible blocks, exported through lava-dl slayer's own path.

`SequentialSNN` chains (synapse, neuron) pairs — `Conv` / `Dense` with a hard-reset `SpikingNeuron`, or a
`RecurrentDense` (which holds its neuron; exported as netx `dense_rec`) — the network shape slayer's
`block.cuba` blocks express. `to_slayer` rebuilds it from `lava.lib.dl.slayer.block.cuba`
blocks with the same weights (our layers use slayer's weight layout), and `export_netx` writes it with the
blocks' own `export_hdf5`, giving a file stock `lava.lib.dl.netx.hdf5.Network` loads.

Mapping: our h = decay * u + I is CUBA with current_decay = 1 (no persistent current) and voltage_decay =
1 - decay; slayer fires on v >= threshold + eps, Loihi's strict >. slayer's blocks quantise weights to 8 bits
(steps of 1/32 in [-4, 3.97]) and emulate Loihi's integer voltage decay, so with weights on that grid an IF
network (no decay rounding) gives identical spikes. The blocks are built with `delay_shift=False`: slayer's
default shifts each block's output by one step to model the chip's per-hop latency, which netx builds itself
when it loads the file. The file has no input layer; load it with `input_shape=(W, H, C)`.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import torch
from torch import nn

from ..errors import InputError
from ..fileio import atomic_path
from .layers import Conv, Dense, RecurrentDense
from .neurons import NeuronConfig


class SequentialSNN(nn.Module):
    """`[N, C, H, W, T]` through (Conv | Dense, SpikingNeuron) pairs; Dense layers flatten their input."""

    def __init__(self, layers: list):
        super().__init__()
        pairs = [(item, item.neuron) if isinstance(item, RecurrentDense) else item for item in layers]
        self.synapses = nn.ModuleList(s for s, _ in pairs)
        self.neurons = nn.ModuleList(n for _, n in pairs)
        for i, neuron in enumerate(self.neurons):
            cfg = neuron.config
            if cfg.reset != "hard" or cfg.reset_value != 0 or cfg.mpr:
                raise InputError(f"layer {i}: a CUBA block needs a hard reset to 0 and no MPR (got {cfg})")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for synapse, neuron in zip(self.synapses, self.neurons):
            x = synapse(x) if isinstance(synapse, RecurrentDense) else neuron(synapse(x))
        return x


def cuba_params(cfg: NeuronConfig) -> dict:
    """slayer CUBA neuron parameters equivalent to our neuron."""
    return dict(threshold=cfg.threshold, current_decay=1.0, voltage_decay=1.0 - cfg.decay,
                tau_grad=1.0, scale_grad=1.0)


def to_slayer(net: SequentialSNN) -> nn.ModuleList:
    """The same network as `lava.lib.dl.slayer.block.cuba` blocks (weights copied)."""
    from ..stack import require_lava
    require_lava()
    from lava.lib.dl import slayer

    blocks = nn.ModuleList()
    spatial = False
    for synapse, neuron in zip(net.synapses, net.neurons):
        params = cuba_params(neuron.config)
        if isinstance(synapse, Conv):
            spatial = True
            block = slayer.block.cuba.Conv(params, synapse.in_channels, synapse.out_channels,
                                           synapse.kernel_size, stride=synapse.stride, padding=synapse.padding,
                                           dilation=synapse.dilation, groups=synapse.groups, delay_shift=False)
        elif isinstance(synapse, RecurrentDense):
            if spatial:
                blocks.append(slayer.block.cuba.Flatten())
                spatial = False
            block = slayer.block.cuba.Recurrent(params, synapse.ff.in_features, synapse.ff.out_features,
                                                delay_shift=False)
            with torch.no_grad():
                block.recurrent_synapse.weight.copy_(synapse.rec_weight.reshape(block.recurrent_synapse.weight.shape))
                block.input_synapse.weight.copy_(synapse.weight.reshape(block.input_synapse.weight.shape))
            blocks.append(block)
            continue
        elif isinstance(synapse, Dense):
            if synapse.bias is not None:
                raise InputError("a CUBA dense block has no bias; build the Dense with bias=False")
            if spatial:  # netx's 'flatten' layer, as in slayer's own examples
                blocks.append(slayer.block.cuba.Flatten())
                spatial = False
            block = slayer.block.cuba.Dense(params, synapse.in_features, synapse.out_features, delay_shift=False)
        else:
            raise InputError(f"unsupported synapse {type(synapse).__name__}")
        with torch.no_grad():
            block.synapse.weight.copy_(synapse.weight.reshape(block.synapse.weight.shape))
        blocks.append(block)
    return blocks


def run_slayer(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """Spikes of slayer blocks on `x` `[N, C, H, W, T]`."""
    for block in blocks:
        x = block(x)
    return x


def export_netx(net: SequentialSNN, input_shape: tuple[int, ...], path) -> Path:
    """Write `net` (input `[C, H, W]` or `[F]`) as NetX HDF5 through slayer's `export_hdf5`, atomically."""
    blocks = to_slayer(net)
    with torch.no_grad():  # slayer's blocks learn their output shapes from a forward pass
        run_slayer(blocks, torch.zeros(1, *input_shape, 2))
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            layers = handle.create_group("layer")
            for i, block in enumerate(blocks):
                block.export_hdf5(layers.create_group(f"{i}"))
    return path
