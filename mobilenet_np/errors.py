"""Exceptions raised by mobilenet_np and weights_tools.

Every problem a user can cause (a bad image, a broken or foreign weight file) raises a subclass of
:class:`MobileNetError` whose message names the problem, so callers and the command line can catch one type
and print one line.
"""


class MobileNetError(Exception):
    """Base class of every error this project raises on purpose."""


class InputError(MobileNetError, ValueError):
    """An image batch of the wrong rank, channel count, dtype, size or value range, or with NaN/inf."""


class WeightsError(MobileNetError):
    """Base class of problems with a weight file."""


class WeightsFileNotFoundError(WeightsError, FileNotFoundError):
    """The weight file (or a part of it, e.g. a checkpoint's ``.data`` shard) does not exist."""


class CorruptFileError(WeightsError):
    """The file is truncated, has a wrong magic number, or its structure cannot be parsed."""


class ChecksumError(CorruptFileError):
    """A stored checksum (e.g. a checkpoint entry's masked CRC32C) does not match the bytes."""


class UnsupportedFormatError(WeightsError):
    """The file is readable but of a kind, dtype or op this project does not handle."""


class VariableMismatchError(WeightsError):
    """Variables are missing, unexpected or of the wrong shape for the architecture.

    The lists are kept as attributes so tools can print them one per line.
    """

    def __init__(self, message, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)  # (name, expected_shape, found_shape)
