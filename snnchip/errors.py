"""The exceptions snnchip raises: one small hierarchy, used by every library module.

Library code raises these with a one-line message that says what is wrong and where (file, layer, field, byte
offset); only the console scripts (`snnchip.cli_util.one_line_errors`) turn them into a printed line and an exit
status. Every input error is also a `ValueError`, so code that catches ValueError keeps working.

    SnnchipError
    ├── InputError (ValueError)      bad input: a file, shape, value or option        exit status 2
    │   ├── FormatError              a file that is not what it claims: corrupt, truncated, foreign, malformed
    │   ├── UnsupportedError         well formed, but something snnchip cannot run or deploy exactly
    │   └── ChipRangeError           a value outside what the chip's registers hold (bit widths, ranges)
    ├── StackError (RuntimeError)    the Python environment lacks a working torch / Lava            exit status 2
    └── LavaTimeout (TimeoutError)   a Lava run did not finish in time; its processes were stopped  exit status 2
"""


class SnnchipError(Exception):
    """Anything snnchip reports as one line to the user (the CLIs exit with status 2)."""


class InputError(SnnchipError, ValueError):
    """A problem with the user's input: a file, a shape, a value, an option."""


class FormatError(InputError):
    """A file that cannot be read as the format it claims (corrupt, truncated, foreign, or a malformed field)."""


class UnsupportedError(InputError):
    """A well-formed input that uses a layer, node, neuron or option snnchip cannot run or deploy exactly."""


class ChipRangeError(InputError):
    """A value outside what the chip holds: a bit width, an exponent, a decay, a threshold, a delay."""


class StackError(SnnchipError, RuntimeError):
    """The Python environment lacks a working torch / lava-nc / lava-dl."""


class LavaTimeout(SnnchipError, TimeoutError):
    """A Lava run that did not finish within its time limit; the watchdog stopped its processes."""
