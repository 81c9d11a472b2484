"""Neuron processes for populations that stock `lava.proc.lif.LIFReset` cannot express.

All state is flat `[size]`. Like `LIFReset`, a population restarts (u = v = 0) at the start of every step whose
1-based Lava time step satisfies `time_step % reset_interval == reset_offset`, so samples streamed back to back
through a pipelined network never leak into each other. The fixed-point models reuse Lava's bit-accurate CUBA
dynamics (`AbstractPyLifModelFixed.subthr_dynamics`: 12-bit decays, input << 6, 24-bit wrapping current,
saturating voltage); only the reset differs.

- `SoftResetLIF`: spikes when v > vth (fixed: vth << 6), then v -= reset_amount (fixed: in v units, i.e. already
  scaled), saturating at Loihi's 24-bit voltage limits. reset_amount = 0 is a neuron without reset.
- `Readout`: the same dynamics without a threshold; it never spikes and sends its voltage on `v_out` each step.
- `GradedRelay`: sends its synaptic input of the step as a graded spike (Loihi 2 graded spikes); it has no state.
"""
import numpy as np

from ...loihi import STATE_BITS, VTH_BITS
from ...stack import require_lava

require_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat  # noqa: E402
from lava.proc.lif.process import AbstractLIF  # noqa: E402


class _ResettingLIF(AbstractLIF):
    """CUBA state (u, v, du, dv, bias) with a periodic sample reset and a voltage output port `v_out`."""

    def __init__(self, *, shape, du, dv, bias_mant=0, bias_exp=0, reset_interval=1, reset_offset=0,
                 name=None, **kwargs):
        if reset_interval < 1:
            raise ValueError(f"reset_interval must be >= 1, got {reset_interval}")
        super().__init__(shape=shape, u=0, v=0, du=du, dv=dv, bias_mant=bias_mant, bias_exp=bias_exp,
                         name=name, log_config=None, reset_interval=reset_interval,
                         reset_offset=reset_offset % reset_interval, **kwargs)
        self.v_out = OutPort(shape=shape)


class SoftResetLIF(_ResettingLIF):
    """LIF that subtracts `reset_amount` from v after a spike instead of zeroing it (SRIF, seed 001)."""

    def __init__(self, *, shape, du, dv, vth, reset_amount, bias_mant=0, bias_exp=0, reset_interval=1,
                 reset_offset=0, name=None):
        super().__init__(shape=shape, du=du, dv=dv, bias_mant=bias_mant, bias_exp=bias_exp,
                         reset_interval=reset_interval, reset_offset=reset_offset, name=name,
                         vth=vth, reset_amount=reset_amount)
        self.vth = Var(shape=(1,), init=vth)
        self.reset_amount = Var(shape=(1,), init=reset_amount)


class Readout(_ResettingLIF):
    """Leaky integrator without threshold: its voltage, sent on `v_out` every step, is the network's output."""


class _SampleReset:
    """Mixin for process models: zero u and v at the first step of each sample."""

    def restart_if_new_sample(self):
        if self.time_step % self.proc_params["reset_interval"] == self.proc_params["reset_offset"]:
            self.u[:] = 0
            self.v[:] = 0


class _FloatModel(_SampleReset, AbstractPyLifModelFloat):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self):
        a_in = self.a_in.recv()
        self.restart_if_new_sample()
        self.subthr_dynamics(activation_in=a_in)
        spikes = self.spiking_activation()
        self.reset_voltage(spikes)
        self.s_out.send(spikes)
        self.v_out.send(self.v)


class _FixedModel(_SampleReset, AbstractPyLifModelFixed):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=STATE_BITS)
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=STATE_BITS)

    def run_spk(self):
        a_in = self.a_in.recv()
        self.restart_if_new_sample()
        self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in)
        spikes = self.spiking_activation()
        self.reset_voltage(spikes)
        self.s_out.send(spikes)
        self.v_out.send(self.v)


@implements(proc=SoftResetLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySoftResetLIFModelFloat(_FloatModel):
    vth: float = LavaPyType(float, float)
    reset_amount: float = LavaPyType(float, float)

    def spiking_activation(self):
        return self.v > self.vth

    def reset_voltage(self, spike_vector):
        self.v[spike_vector] -= self.reset_amount


@implements(proc=SoftResetLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PySoftResetLIFModelBitAcc(_FixedModel):
    vth: int = LavaPyType(int, np.int32, precision=VTH_BITS)
    reset_amount: int = LavaPyType(int, np.int32, precision=STATE_BITS)

    def scale_threshold(self):
        self.effective_vth = np.left_shift(np.int64(self.vth), self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self):
        return self.v > self.effective_vth

    def reset_voltage(self, spike_vector):
        # Loihi's voltage register saturates at 24 bits; a subtraction cannot leave that range either.
        limit = self.max_uv_val - 1
        self.v[spike_vector] = np.clip(np.int64(self.v[spike_vector]) - self.reset_amount, -limit, limit)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutModelFloat(_FloatModel):
    def spiking_activation(self):
        return np.zeros(self.v.shape, dtype=bool)

    def reset_voltage(self, spike_vector):
        pass


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyReadoutModelBitAcc(_FixedModel):
    def scale_threshold(self):
        self.isthrscaled = True

    def spiking_activation(self):
        return np.zeros(self.v.shape, dtype=bool)

    def reset_voltage(self, spike_vector):
        pass


class GradedRelay(AbstractProcess):
    """Forwards its summed synaptic input `a_in` as graded spikes on `s_out` in the same step."""

    def __init__(self, *, shape, name=None):
        super().__init__(shape=shape, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)


class _RelayModel(PyLoihiProcessModel):
    def run_spk(self):
        self.s_out.send(self.a_in.recv())


@implements(proc=GradedRelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGradedRelayModelFloat(_RelayModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=GradedRelay, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyGradedRelayModelBitAcc(_RelayModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=STATE_BITS)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=STATE_BITS)
