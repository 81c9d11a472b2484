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

from .errors import InputError, SnnchipError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


def _log_traceback(prog: str) -> str:
    """Write the current exception's traceback to a log file; returns its path."""
    fd, path = tempfile.mkstemp(prefix=f"{prog}-", suffix=".log")
    with os.fdopen(fd, "w") as handle:
        traceback.print_exc(file=handle)
    return path


def check_input_file(path, what: str) -> None:
    """InputError unless `path` is a file: a folder is said to be one (naming its best.pt, as a run folder of
    snn-train holds one), a missing path to be missing."""
    if os.path.isdir(path):
        best = os.path.join(path, "best.pt")
        hint = f"; did you mean {best}?" if os.path.isfile(best) else ""
        raise InputError(f"{path}: is a directory, not a {what}{hint}")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")


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

