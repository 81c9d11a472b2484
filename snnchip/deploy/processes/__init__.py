"""Lava processes that stock Lava lacks: the soft-reset LIF, a voltage readout, a graded relay, a scaled,
delayed convolution synapse. Each has a float and a bit-accurate fixed-point process model."""
from .neurons import GradedRelay, Readout, SoftResetLIF
from .conv import ConvSynapse

__all__ = ["SoftResetLIF", "Readout", "GradedRelay", "ConvSynapse"]
