"""Networks built in snnTorch 1.0 and SpikingJelly 2.0, written to NIR by those frameworks' own exporters, and each
framework's own step-by-step spikes (the references the imported graphs must reproduce).

How the conventions are matched (docs/nir.md):
- dt: both exporters write dt = 1e-4 s (snnTorch hard-codes it; SpikingJelly's default); `read_nir` uses 1e-4.
- reset: NIR neurons reset to v_reset. snnTorch's default reset is by subtraction, which its exporter writes as the
  same LIF node as reset to zero, so the snnTorch networks use `reset_mechanism='zero'` with `reset_delay=False`
  (the neurons snnTorch's own importer builds): the voltage is zeroed in the step it spikes, NIR's hard reset.
  snnTorch's default delayed reset gives the same spikes for Leaky, but for Synaptic it also zeroes the voltage
  of the step after a spike (input of that step lost), which no NIR node expresses. SpikingJelly's default is a
  hard reset to v_reset = 0 (it refuses to export its soft reset).
- threshold: snnTorch fires on mem > threshold (as NIR and the chip), SpikingJelly on H >= threshold; the inputs
  and weights are continuous random values, so no voltage equals a threshold exactly.
- precision: the references run in float64, as the float graph does (snnTorch casts spikes to float32; a forward
  hook gives the next layer float64 0/1 values, which changes no value).
- snnTorch 1.0 needs per-neuron beta and threshold tensors for a conv layer to export (a scalar beta writes a LIF
  of shape () that fails NIR's type check), and `ignore_dims=[0]` to drop the batch dimension.
- snnTorch's `export_to_nir` traces with nirtorch's deprecated module-hook tracer, which does not see a `+`
  outside a module: it writes a residual block without its shortcut edge. The residual block is therefore traced
  by nirtorch 2.6's `torch_to_nir` (the tracer SpikingJelly's exporter uses) with snnTorch's own node mapping
  (`snntorch.export_nir._extract_snntorch_module`).
"""
from __future__ import annotations

import numpy as np
import torch

DT = 1e-4


# -- snnTorch ------------------------------------------------------------------------------------------------
def snntorch_leaky(beta: float, shape, threshold: float = 1.0):
    import snntorch as snn
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, threshold), init_hidden=True,
                     reset_mechanism="zero", reset_delay=False)


def snntorch_synaptic(alpha: float, beta: float, shape, threshold: float = 1.0):
    import snntorch as snn
    return snn.Synaptic(alpha=torch.full(shape, alpha), beta=torch.full(shape, beta),
                        threshold=torch.full(shape, threshold), init_hidden=True, reset_mechanism="zero",
                        reset_delay=False)


def snntorch_conv_net():
    """Conv (padding) -> Leaky -> AvgPool -> Conv (stride 2) -> Leaky -> Flatten -> Linear (no bias) -> Synaptic."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 6, 3, padding=1), snntorch_leaky(0.8, (6, 10, 10)),
        torch.nn.AvgPool2d(2), torch.nn.Conv2d(6, 8, 3, stride=2), snntorch_leaky(0.9, (8, 2, 2), 0.7),
        torch.nn.Flatten(), torch.nn.Linear(32, 5, bias=False), snntorch_synaptic(0.6, 0.85, (5,), 0.6))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[3].weight.mul_(4.0)
        net[6].weight.mul_(4.0)
    return net


class SnnTorchResBlock(torch.nn.Module):
    """conv -> lif0 -> conv -> lif1 -> conv (+ lif0's spikes) -> lif2 -> flatten -> linear -> lif3."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv0, self.lif0 = torch.nn.Conv2d(2, 4, 3, padding=1), snntorch_leaky(0.8, (4, 6, 6))
        self.conv1, self.lif1 = torch.nn.Conv2d(4, 4, 3, padding=1), snntorch_leaky(0.7, (4, 6, 6))
        self.conv2, self.lif2 = torch.nn.Conv2d(4, 4, 3, padding=1), snntorch_leaky(0.9, (4, 6, 6))
        self.flat, self.fc, self.lif3 = torch.nn.Flatten(), torch.nn.Linear(144, 5), snntorch_leaky(0.75, (5,))
        with torch.no_grad():
            for conv in (self.conv0, self.conv1, self.conv2):
                conv.weight.mul_(3.0)
            self.fc.weight.mul_(3.0)

    def forward(self, x):
        a = self.lif0(self.conv0(x))
        b = self.lif1(self.conv1(a))
        c = self.lif2(self.conv2(b) + a)
        return self.lif3(self.fc(self.flat(c)))


def snntorch_export(net, input_shape, path, residual: bool = False) -> None:
    import nir
    import nirtorch
    import snntorch as snn
    from snntorch.export_nir import _extract_snntorch_module, export_to_nir
    if not residual:
        graph = export_to_nir(net, torch.zeros(1, *input_shape), ignore_dims=[0])
    else:
        mapping = {t: _extract_snntorch_module for t in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Flatten,
                                                         torch.nn.AvgPool2d, snn.Leaky, snn.Synaptic)}
        graph = nirtorch.torch_to_nir(net, mapping, type_check=False)
        (inp,) = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
        graph.nodes[inp] = nir.Input(input_type=np.array(input_shape))     # the tracer leaves it untyped
        graph = nir.NIRGraph(nodes=graph.nodes, edges=graph.edges, type_check=True)
    nir.write(str(path), graph)


def snntorch_spikes(net, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{module name: spikes [N, *shape, T]} of every Leaky / Synaptic, stepping the net over x's last axis."""
    import snntorch as snn
    from snntorch import utils
    net = net.double()
    utils.reset(net)
    recorded: dict[str, list] = {}

    def hook(name):
        def keep(module, inputs, out):
            spikes = (out[0] if isinstance(out, tuple) else out).double()
            recorded.setdefault(name, []).append(spikes)
            return (spikes,) + tuple(out[1:]) if isinstance(out, tuple) else spikes
        return keep

    hooks = [m.register_forward_hook(hook(name)) for name, m in net.named_modules()
             if isinstance(m, (snn.Leaky, snn.Synaptic))]
    try:
        with torch.no_grad():
            for t in range(x.shape[-1]):
                net(x[..., t].contiguous())
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.stack(v, -1) for name, v in recorded.items()}


# -- SpikingJelly --------------------------------------------------------------------------------------------
def spikingjelly_conv_net():
    """Conv -> LIF (decay_input) -> AvgPool -> Conv (stride 2) -> LIF (no decay_input) -> Flatten -> Linear -> IF
    -> Linear -> CUBALIF."""
    from spikingjelly.activation_based import layer, neuron
    torch.manual_seed(2)
    net = torch.nn.Sequential(
        layer.Conv2d(2, 6, 3, padding=1), neuron.LIFNode(tau=2.0),
        layer.AvgPool2d(2), layer.Conv2d(6, 8, 3, stride=2), neuron.LIFNode(tau=3.0, decay_input=False),
        layer.Flatten(), layer.Linear(32, 12), neuron.IFNode(),
        layer.Linear(12, 5, bias=False), neuron.CUBALIFNode(c_decay=0.5, v_decay=0.75, v_threshold=0.5))
    with torch.no_grad():
        net[0].weight.mul_(4.0)
        net[3].weight.mul_(3.0)
        net[6].weight.mul_(3.0)
        net[8].weight.mul_(2.0)
    return net


class SpikingJellyResBlock(torch.nn.Module):
    """conv -> lif0 -> conv -> lif1 -> conv (+ lif0's spikes) -> IF -> pool -> flatten -> linear -> lif3."""

    def __init__(self):
        super().__init__()
        from spikingjelly.activation_based import layer, neuron
        torch.manual_seed(3)
        self.conv0, self.lif0 = layer.Conv2d(2, 4, 3, padding=1), neuron.LIFNode(tau=2.0)
        self.conv1, self.lif1 = layer.Conv2d(4, 4, 3, padding=1), neuron.LIFNode(tau=1.5)
        self.conv2, self.lif2 = layer.Conv2d(4, 4, 3, padding=1), neuron.IFNode()
        self.pool, self.flat = layer.AvgPool2d(2), layer.Flatten()
        self.fc, self.lif3 = layer.Linear(36, 5), neuron.LIFNode(tau=2.0, decay_input=False)
        with torch.no_grad():
            for conv in (self.conv0, self.conv1, self.conv2):
                conv.weight.mul_(4.0)
            self.fc.weight.mul_(12.0)

    def forward(self, x):
        a = self.lif0(self.conv0(x))
        b = self.lif1(self.conv1(a))
        c = self.lif2(self.conv2(b) + a)
        return self.lif3(self.fc(self.flat(self.pool(c))))


def spikingjelly_export(net, input_shape, path) -> None:
    from spikingjelly.activation_based.nir_exchange import export_to_nir
    export_to_nir(net, torch.zeros(1, *input_shape), save_path=str(path))


def spikingjelly_spikes(net, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{module name: spikes [N, *shape, T]} of every neuron, stepping the (single-step) net over x's last axis."""
    from spikingjelly.activation_based import functional, neuron
    net = net.double()
    functional.reset_net(net)
    recorded: dict[str, list] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: recorded.setdefault(name, []).append(o))
             for name, m in net.named_modules() if isinstance(m, neuron.BaseNode)]
    try:
        with torch.no_grad():
            for t in range(x.shape[-1]):
                net(x[..., t])
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.stack(v, -1) for name, v in recorded.items()}


def spikingjelly_import_spikes(nir_graph, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """SpikingJelly's own `import_from_nir` run over x: ({node name with '.' as '_': spikes [N, *shape, T]},
    graph output [N, *, T])."""
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based.nir_exchange import import_from_nir
    module = import_from_nir(nir_graph, dtype=torch.float64)
    recorded: dict[str, list] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: recorded.setdefault(name, []).append(o[0]))
             for name, m in module.named_children()
             if isinstance(getattr(m, "module", None), neuron.BaseNode)]
    outputs, state = [], None
    try:
        with torch.no_grad():
            for t in range(x.shape[-1]):
                y, state = module(x[..., t], state)
                outputs.append(y)
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.stack(v, -1) for name, v in recorded.items()}, torch.stack(outputs, -1)


def snntorch_recurrent_net():
    """Linear -> RLeaky (all-to-all recurrent weights; snnTorch exports it as a subgraph with a cycle) -> Linear ->
    Leaky."""
    import snntorch as snn
    torch.manual_seed(4)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 8),
        snn.RLeaky(beta=torch.full((8,), 0.8), threshold=torch.full((8,), 1.0), linear_features=8, init_hidden=True,
                   reset_mechanism="zero", reset_delay=False),
        torch.nn.Linear(8, 4), snntorch_leaky(0.7, (4,)))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[1].recurrent.weight.mul_(2.0)
        net[2].weight.mul_(3.0)
    return net


def snntorch_spikes_float32(net, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """As `snntorch_spikes`, in snnTorch's own float32 (RLeaky keeps its float32 spikes internally, so a float64
    run is not possible); returned as float64 0/1."""
    import snntorch as snn
    from snntorch import utils
    utils.reset(net)
    recorded: dict[str, list] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: recorded.setdefault(name, []).append(
        (o[0] if isinstance(o, tuple) else o).double())) for name, m in net.named_modules()
        if isinstance(m, (snn.Leaky, snn.RLeaky))]
    try:
        with torch.no_grad():
            for t in range(x.shape[-1]):
                net(x[..., t].float())
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.stack(v, -1) for name, v in recorded.items()}
