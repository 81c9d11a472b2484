"""The soft-reset neuron as a Lava process: spike times and voltages computed by hand, and equal to simulate."""
import numpy as np
import pytest

from snnchip.deploy.run import run_on_lava
from snnchip.sim import sample_stream
from snnchip.graph import Graph, Neuron, Population, Projection
from snnchip.sim import simulate

VTH, AMOUNT, STEPS = 100, 100 * 64, 12


def one_neuron_graph(reset: str) -> Graph:
    """graded input -> weight 1 -> one non-leaky neuron (du = 4095: no current memory, dv = 0: no leak)."""
    neuron = Neuron(threshold=VTH, du=4095, dv=0, reset=reset, reset_amount=AMOUNT if reset == "soft" else 0)
    pops = [Population("in", (1,), Neuron(threshold=None, graded=True), is_input=True),
            Population("n", (1,), neuron, is_output=True)]
    return Graph(pops, [Projection("w", "in", "n", "dense", np.array([[1]]), num_message_bits=8)],
                 timing="pipelined", fixed=True)


def by_hand(drive: np.ndarray, reset: str) -> tuple[np.ndarray, np.ndarray]:
    """v += a << 6 every step (a arriving one step late), spike when v > VTH << 6, then subtract or zero."""
    v, spikes, volts = 0, [], []
    for t in range(len(drive)):
        v += (int(drive[t - 1]) << 6) if t >= 1 else 0
        s = v > VTH << 6
        if s:
            v = v - AMOUNT if reset == "soft" else 0
        spikes.append(int(s))
        volts.append(v)
    return np.array(spikes), np.array(volts)


@pytest.fixture(scope="module")
def runs():
    drive = np.array([70, 70, 70, 0, 90, 250, 0, 0, 60, 60, 0, 0])
    x = drive.reshape(1, 1, STEPS)
    return drive, {reset: run_on_lava(one_neuron_graph(reset), x, steps_per_sample=STEPS + 1)
                   for reset in ("soft", "hard")}


def test_soft_reset_keeps_the_excess_voltage(runs):
    drive, lava = runs
    for reset in ("soft", "hard"):
        spikes, volts = by_hand(drive, reset)
        np.testing.assert_array_equal(lava[reset].stream_spikes["n"][0][:STEPS], spikes, err_msg=reset)
    # stock LIFReset (hard reset) has no voltage port; the soft-reset process sends v every step
    np.testing.assert_array_equal(lava["soft"].stream_outputs["n"][0][:STEPS], by_hand(drive, "soft")[1])
    # the excess above threshold carried over by the soft reset gives extra spikes
    assert lava["soft"].stream_spikes["n"].sum() > lava["hard"].stream_spikes["n"].sum()


def test_soft_reset_matches_simulate(runs):
    drive, lava = runs
    g = one_neuron_graph("soft")
    x = drive.reshape(1, 1, STEPS)
    stream = sample_stream(g, x, STEPS + 1, extra_steps=1)
    ref = simulate(g, {k: v[None] for k, v in stream.items()}, record=("n",), reset_interval=STEPS + 1)
    np.testing.assert_array_equal(lava["soft"].stream_spikes["n"], ref.spikes["n"][0].numpy())
    np.testing.assert_array_equal(lava["soft"].stream_outputs["n"], ref.outputs["n"][0].numpy())
