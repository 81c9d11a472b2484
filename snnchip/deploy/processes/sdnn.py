"""Sigma-delta processes that restart at every sample: lava.proc.sdn's Delta, SigmaDelta and Sigma (whose stock
processes have no reset; netx ignores `reset_interval` for them) with the bit-accurate dynamics of their stock
fixed-point models (`PyDeltaModelFixed`, `PySigmaDeltaModelFixed`, `PySigmaModelFixed`) unchanged.

As `neurons.py`: every state (sigma, act, residue, error) is zeroed at the start of every step whose 1-based Lava
time step satisfies `time_step % reset_interval == reset_offset`, so samples streamed back to back never leak into
each other, as `snnchip.sim` resets a population at its depth. `v_out` sends the activation after each step (the
sigma of a Sigma process): the population's output as the simulator records it (sim/sdnn.py).
"""
import numpy as np

from ...loihi import STATE_BITS
from ...stack import require_lava

require_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.ports import PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import OutPort  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402
from lava.proc.sdn.models import PyDeltaModelFixed, PySigmaDeltaModelFixed, PySigmaModelFixed  # noqa: E402
from lava.proc.sdn.process import Delta, Sigma, SigmaDelta  # noqa: E402


class _Restarting:
    """Adds the sample reset's parameters and the `v_out` port to a lava.proc.sdn process."""

    def _restart(self, shape, reset_interval: int, reset_offset: int) -> None:
        if reset_interval < 1:
            raise ValueError(f"reset_interval must be >= 1, got {reset_interval}")
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset) % int(reset_interval)
        self.v_out = OutPort(shape=shape)


class RestartingDelta(_Restarting, Delta):
    def __init__(self, *, shape, vth, cum_error=False, spike_exp=0, state_exp=0, reset_interval=1,
                 reset_offset=0, name=None):
        super().__init__(shape=shape, vth=vth, cum_error=cum_error, spike_exp=spike_exp, state_exp=state_exp)
        self.name = name or self.name
        self._restart(shape, reset_interval, reset_offset)


class RestartingSigmaDelta(_Restarting, SigmaDelta):
    def __init__(self, *, shape, vth, bias=0, act_mode=None, cum_error=False, spike_exp=0, state_exp=0,
                 reset_interval=1, reset_offset=0, name=None):
        super().__init__(shape=shape, vth=vth, bias=bias, act_mode=act_mode, cum_error=cum_error,
                         spike_exp=spike_exp, state_exp=state_exp, name=name)
        self._restart(shape, reset_interval, reset_offset)


class RestartingSigma(_Restarting, Sigma):
    def __init__(self, *, shape, reset_interval=1, reset_offset=0, name=None):
        super().__init__(shape=shape)
        self.name = name or self.name
        self._restart(shape, reset_interval, reset_offset)


class _RestartModel:
    """Zero the states at the first step of each sample, run the stock model's step, send the output state."""
    STATES = ("sigma", "act", "residue", "error")
    OUTPUT = "act"
    implements_process = None      # the stock model's process is replaced by @implements below

    def run_spk(self) -> None:
        if self.time_step % self.proc_params["reset_interval"] == self.proc_params["reset_offset"]:
            for name in self.STATES:
                getattr(self, name)[:] = 0
        super().run_spk()
        self.v_out.send(getattr(self, self.OUTPUT))


@implements(proc=RestartingDelta, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRestartingDeltaModelFixed(_RestartModel, PyDeltaModelFixed):
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=STATE_BITS)


@implements(proc=RestartingSigmaDelta, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRestartingSigmaDeltaModelFixed(_RestartModel, PySigmaDeltaModelFixed):
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=STATE_BITS)


@implements(proc=RestartingSigma, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRestartingSigmaModelFixed(_RestartModel, PySigmaModelFixed):
    STATES = ("sigma",)
    OUTPUT = "sigma"
    v_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=STATE_BITS)
