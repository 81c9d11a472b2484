"""snnchip: train deep spiking ResNets, export them to Loihi fixed point, simulate, deploy and cost them.

Stages (one subpackage each): train -> export -> sim / deploy -> energy. The deployable graph
(`snnchip.graph`) is the one intermediate representation every stage after training reads.
"""
__version__ = "0.1.0"
