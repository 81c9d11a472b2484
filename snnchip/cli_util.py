"""What every console script shares: errors as one line and an exit status.

`one_line_errors` wraps a `main(argv=None) -> int`: an `snnchip.errors.SnnchipError` (bad input, broken
environment) prints `error: <message>` and exits 2, and so do an OS error (a path that cannot be read or written,
a full disk: `error: <file>: <reason>`) and running out of memory; an unexpected exception is an internal error:
its traceback goes to a log file, and one line names the exception and that file (exit 1); Ctrl-C exits 130 and
SIGTERM 143 (128 + the signal), each with one line, after the `finally` blocks of the interrupted code have run
(so `fileio.atomic_path` removes its temporary file).
"""
from __future__ import annotations

import functools
import os
import signal
import sys
import tempfile
import threading
import traceback

from .errors import InputError, SnnchipError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup runs as for Ctrl-C."""


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


def _os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    return f"{where}: {reason}" if where else reason


def _on_sigterm(signum, frame):
    raise Terminated()


def one_line_errors(main):
    """Decorate a console-script `main(argv=None) -> int` (module docstring)."""
    @functools.wraps(main)
    def wrapper(argv=None):
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
        try:
            return main(argv)
        except SnnchipError as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except OSError as exc:            # the file system said no: a path, a permission, a full disk
            print(f"error: {_os_error(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except MemoryError:
            print("error: out of memory (the input asks for more than this machine has)", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Terminated:
            print("terminated (SIGTERM)", file=sys.stderr)
            return EXIT_TERMINATED
        except Exception as exc:          # a bug of ours: say so in one line, keep the traceback for the report
            log = _log_traceback(os.path.basename(sys.argv[0]) or "snnchip")
            message = " ".join(str(exc).split())[:300]
            print(f"internal error: {type(exc).__name__}: {message} (traceback in {log})", file=sys.stderr)
            return EXIT_INTERNAL
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    return wrapper


def torch_device(name: str):
    """`--device NAME` as a torch.device; InputError (one line) for a name torch does not know or a device this
    machine lacks."""
    import torch
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise InputError(f"--device {name}: not a torch device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA device available")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device {name}: snnchip runs on cpu or cuda")
    return device


def parse_shape(text: str, option: str = "--input-shape") -> tuple[int, ...]:
    """A shape given on the command line, "C,H,W" or "F", as positive ints; InputError (one line) otherwise."""
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise InputError(f"{option} '{text}': expected integers C,H,W (e.g. 3,224,224) or F") from None
    if len(shape) not in (1, 3) or any(s <= 0 for s in shape):
        raise InputError(f"{option} '{text}': expected positive C,H,W (e.g. 3,224,224) or F")
    return shape
