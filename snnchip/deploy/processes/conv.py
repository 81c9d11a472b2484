"""`ConvSynapse`: a 2-D convolution projection between flat populations, with weight exponent and delay.

Stock `lava.proc.conv.Conv` works in (x, y, c) order and its fixed-point model ignores `weight_exp`, so it cannot
run a quantised graph bit-exactly; this process keeps the graph's layout (source and target flattened from
`(C, H, W)` in C order) and computes exactly what `lava.proc.dense` does for a dense matrix: binary spikes
(num_message_bits = 0) or graded payloads are multiplied by integer weights, the sum is shifted left by
weight_exp (arithmetic right if negative) and wrapped to 24 signed bits (Lava's Conv), and the result reaches the target `delay + 1` steps later (one step
of synaptic buffering, as every Lava connection process, plus the delay). `delay` is an int or an int array of
the source's shape (per-source axonal delay).
"""
import numpy as np

from ...graph import conv_output_shape
from ...loihi import CONV_RESULT_BITS, STATE_BITS, SYNAPTIC_INPUT_BITS, WEIGHT_BITS
from ...stack import require_lava

require_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402


def signed_wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of integers into `bits` signed bits (lava.proc.conv.utils.signed_clamp)."""
    half = 1 << (bits - 1)
    return (x + half) % (1 << bits) - half


def conv2d(x: np.ndarray, weight: np.ndarray, stride, padding, dilation, groups) -> np.ndarray:
    """Cross-correlation (torch's conv2d) of x `[C_in, H, W]` with weight `[C_out, C_in/groups, kH, kW]`.

    Exact for integer arrays (accumulates in the wider of the two dtypes); returns `[C_out, H_out, W_out]`."""
    c_out, c_in_g, kh, kw = weight.shape
    _, h_out, w_out = conv_output_shape(x.shape, c_out, (kh, kw), stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    out = np.zeros((c_out, h_out * w_out), dtype=np.result_type(x, weight))
    c_out_g = c_out // groups
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dilation[0], kx * dilation[1]
            patch = xp[:, y0:y0 + stride[0] * (h_out - 1) + 1:stride[0], x0:x0 + stride[1] * (w_out - 1) + 1:stride[1]]
            patch = patch.reshape(x.shape[0], h_out * w_out)
            for g in range(groups):
                out[g * c_out_g:(g + 1) * c_out_g] += (weight[g * c_out_g:(g + 1) * c_out_g, :, ky, kx]
                                                       @ patch[g * c_in_g:(g + 1) * c_in_g])
    return out.reshape(c_out, h_out, w_out)


class ConvSynapse(AbstractProcess):
    """Convolution from a flat source of `in_shape` (C, H, W) to a flat target; see the module docstring."""

    def __init__(self, *, weight: np.ndarray, in_shape, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1,
                 weight_exp=0, num_message_bits=0, delay=0, name=None):
        delay = np.broadcast_to(np.asarray(delay, dtype=np.int64), tuple(in_shape)).copy()
        if delay.min() < 0:
            raise ValueError(f"ConvSynapse delays must be >= 0, got {delay.min()}")
        out_shape = conv_output_shape(in_shape, weight.shape[0], weight.shape[2:], stride, padding, dilation)
        super().__init__(weight=weight, in_shape=tuple(in_shape), out_shape=out_shape, stride=tuple(stride),
                         padding=tuple(padding), dilation=tuple(dilation), groups=groups, weight_exp=weight_exp,
                         num_message_bits=num_message_bits, delay=delay, name=name)
        in_size, out_size = int(np.prod(in_shape)), int(np.prod(out_shape))
        self.s_in = InPort(shape=(in_size,))
        self.a_out = OutPort(shape=(out_size,))
        self.weight = Var(shape=weight.shape, init=weight)
        # a_buff[:, k]: synaptic input that reaches the target k + 1 steps from now.
        self.a_buff = Var(shape=(out_size, int(delay.max()) + 1), init=0)


class _ConvSynapseModel(PyLoihiProcessModel):
    def accumulate(self, s_in: np.ndarray) -> None:
        """Add this step's input (flat [in_size]) into the delay buffer."""
        p = self.proc_params
        if p["num_message_bits"] == 0:
            s_in = s_in.astype(bool)
        x = s_in.reshape(p["in_shape"]).astype(self.weight.dtype)
        delay = p["delay"]
        for d in np.unique(delay):
            a = conv2d(np.where(delay == d, x, 0), self.weight, p["stride"], p["padding"], p["dilation"],
                       p["groups"])
            self.a_buff[:, d] += self.scale(a.reshape(-1))

    def scale(self, a: np.ndarray) -> np.ndarray:
        return a

    def run_spk(self):
        # Send what arrived one step ago first, as lava.proc.dense does, so recurrent loops cannot deadlock.
        self.a_out.send(self.a_buff[:, 0])
        self.a_buff = np.roll(self.a_buff, -1, axis=1)
        self.a_buff[:, -1] = 0
        self.accumulate(self.s_in.recv())


@implements(proc=ConvSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyConvSynapseModelFloat(_ConvSynapseModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
    weight: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=ConvSynapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyConvSynapseModelBitAcc(_ConvSynapseModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=STATE_BITS)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=SYNAPTIC_INPUT_BITS)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int64)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=WEIGHT_BITS)

    def scale(self, a: np.ndarray) -> np.ndarray:
        exp = self.proc_params["weight_exp"]
        a = np.left_shift(a, exp) if exp > 0 else np.right_shift(a, -exp)
        return signed_wrap(a, CONV_RESULT_BITS)
