"""The error the readers raise for a file they cannot read, and the warning for one they read only in part."""
import warnings

from ...errors import FormatError


class DataFormatError(FormatError):
    """A truncated, empty or foreign data file: one line naming the file and the byte offset."""

    def __init__(self, path, offset: int, what: str):
        self.path, self.offset, self.what = str(path), int(offset), what
        super().__init__(f"{path}: {what} at byte {offset}")


class DataWarning(UserWarning):
    """A data file read with something left out or empty (e.g. invalid events dropped), said once per file."""


_warned = set()


def warn_once(key, message: str) -> None:
    """Warn `message` (one line naming the file) as a DataWarning the first time `key` is seen in this process:
    readers run once per sample, so a file read every epoch is still reported once."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, DataWarning, stacklevel=3)
