"""What every console script shares: errors as one line and an exit status.

`one_line_errors` wraps a `main(argv=None) -> int`: an `snnchip.errors.SnnchipError` (bad input, broken
environment) prints `error: <message>` and exits 2; an unexpected exception is an internal error: its traceback
goes to a log file, and one line names the exception and that file (exit 1); Ctrl-C exits 130.
"""
from __future__ import annotations

import functools
import os
import sys
import tempfile
import traceback

from .errors import SnnchipError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def _log_traceback(prog: str) -> str:
    """Write the current exception's traceback to a log file; returns its path."""
    fd, path = tempfile.mkstemp(prefix=f"{prog}-", suffix=".log")
    with os.fdopen(fd, "w") as handle:
        traceback.print_exc(file=handle)
    return path


def one_line_errors(main):
    """Decorate a console-script `main(argv=None) -> int` (module docstring)."""
    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except SnnchipError as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:          # a bug of ours: say so in one line, keep the traceback for the report
            log = _log_traceback(os.path.basename(sys.argv[0]) or "snnchip")
            message = " ".join(str(exc).split())[:300]
            print(f"internal error: {type(exc).__name__}: {message} (traceback in {log})", file=sys.stderr)
            return EXIT_INTERNAL
    return wrapper



def parse_shape(text: str, option: str = "--input-shape") -> tuple[int, ...]:
    """A shape given on the command line, "C,H,W" or "F", as positive ints; InputError (one line) otherwise."""
    from .errors import InputError
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise InputError(f"{option} '{text}': expected integers C,H,W (e.g. 3,224,224) or F") from None
    if len(shape) not in (1, 3) or any(s <= 0 for s in shape):
        raise InputError(f"{option} '{text}': expected positive C,H,W (e.g. 3,224,224) or F")
    return shape
