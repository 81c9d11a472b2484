"""Shared helpers for the console scripts: one-line errors and non-zero exits instead of tracebacks."""
import functools
import sys


class UserError(Exception):
    """A problem with the user's input (file, shape, value): printed as one line, exit code 2."""


def one_line_errors(main):
    """Decorate a console-script `main(argv=None) -> int` so that expected failures print one line."""
    @functools.wraps(main)
    def wrapper(argv=None):
        from .stack import StackError
        try:
            return main(argv)
        except (UserError, StackError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    return wrapper
