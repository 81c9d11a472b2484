"""Networks built with lava-dl's own slayer blocks and written by slayer's `export_hdf5`: read by snnchip, simulated,
and compared with stock netx on Lava's fixed-point CPU simulator wherever netx can build them."""
import h5py
import numpy as np
import pytest
import torch

from snnchip.errors import UnsupportedError
from snnchip.formats.netx import read_netx
from snnchip.sim import simulate

from sim.netx_harness import run_netx_on_lava

CUBA = {"threshold": 0.5, "current_decay": 0.3, "voltage_decay": 0.1, "tau_grad": 1.0, "scale_grad": 1.0,
        "requires_grad": False}


def export(blocks, path, input_shape):
    """Size slayer's neurons and synapses with one forward pass, then write every block with its export_hdf5."""
    with torch.no_grad():
        x = torch.ones(1, *input_shape, 2)
        for block in blocks:
            x = block(x)
    with h5py.File(path, "w") as handle:
        layer = handle.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))
    return path


def recurrent_first_file(path):
    """dense_rec first (no input layer), per-neuron iDecay / vDecay vectors (shared_param=False), refDelay 1."""
    from lava.lib.dl import slayer
    torch.manual_seed(0)
    params = {**CUBA, "shared_param": False}
    return export([slayer.block.cuba.Recurrent(params, 6, 8, weight_scale=2),
                   slayer.block.cuba.Dense(params, 8, 3, weight_scale=2)], path, (6,))


def compare(graph, result, lava_blocks):
    neurons = [pop for pop in graph.populations if not pop.neuron.graded]
    assert len(neurons) == len(lava_blocks)
    for pop, block in zip(neurons, lava_blocks):
        for q, theirs in zip(("spikes", "u", "v"), block):
            ours = getattr(result, q)[pop.name][0].numpy()
            if ours.ndim == 4:
                ours = ours.transpose(2, 1, 0, 3)
            bad = np.argwhere(ours != theirs)
            assert len(bad) == 0, f"{pop.name}.{q}: {len(bad)} values differ from Lava, first at step {bad[0][-1]}"


def test_recurrent_first_layer_with_per_neuron_decays_equals_netx_on_lava(tmp_path):
    """The recurrent-first-layer mismatch: slayer writes per-neuron iDecay / vDecay vectors, netx hands them to
    Lava's LIF as vectors; the reader took the first entry for every neuron. Now u, v and spikes of both layers
    equal Lava at every step; netx's joint weight optimisation (weight with weight_rec) is exact here."""
    from lava.lib.dl import netx
    path = recurrent_first_file(tmp_path / "rec.net")
    with h5py.File(path) as handle:
        i_decay = handle["layer/0/neuron/iDecay"][()]
        assert i_decay.shape == (8,) and len(set(i_decay.tolist())) > 1
        assert int(handle["layer/0/neuron/refDelay"][()]) == 1
    graph = read_netx(path)
    np.testing.assert_array_equal(graph.populations[1].neuron.du, i_decay - 1)
    block = netx.hdf5.Network(net_config=str(path)).layers[0]
    assert block.synapse.proc_params["weight_exp"] != 0              # netx rescaled weight and weight_rec jointly
    steps = 12
    x = (np.random.default_rng(5).random((6, steps)) < 0.6).astype(np.int64)
    result = simulate(graph, torch.as_tensor(x[None]), record=("spikes", "u", "v"))
    lava = run_netx_on_lava(path, steps, x)
    assert lava[1][0].sum() > 0                                       # the last layer spikes
    compare(graph, result, lava)


@pytest.mark.parametrize("field, value, words", [
    ("refDelay", 3, "neuron field 'refDelay' > 1"),
    ("gradedSpike", True, "neuron field 'gradedSpike' is set"),
    ("vThMant", np.arange(8) + 20, "neuron field 'vThMant' has 8 different values"),
    ("iDecay", np.arange(5) + 100, "neuron field 'iDecay' has 5 values"),
])
def test_neuron_fields_netx_ignores_or_cannot_take_are_one_line(tmp_path, field, value, words):
    path = recurrent_first_file(tmp_path / "rec.net")
    with h5py.File(path, "a") as handle:
        del handle[f"layer/0/neuron/{field}"]
        handle["layer/0/neuron"].create_dataset(field, data=value)
    with pytest.raises(ValueError) as info:
        read_netx(path)
    text = str(info.value)
    assert "\n" not in text and f"layer 0 (dense_rec): {words}" in text
