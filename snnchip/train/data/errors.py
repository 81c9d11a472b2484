"""The one error the readers raise for a file they cannot read."""
from ...errors import FormatError


class DataFormatError(FormatError):
    """A truncated, empty or foreign data file: one line naming the file and the byte offset."""

    def __init__(self, path, offset: int, what: str):
        self.path, self.offset, self.what = str(path), int(offset), what
        super().__init__(f"{path}: {what} at byte {offset}")
