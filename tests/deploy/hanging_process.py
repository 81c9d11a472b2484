"""A Lava process whose model never finishes a step (it sleeps), standing in for a process model that hangs."""
import time

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

HANG_S = 3600


class Hang(AbstractProcess):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.s_out = OutPort(shape=(1,))


@implements(proc=Hang, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyHangModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)

    def run_spk(self):
        time.sleep(HANG_S)
