"""The errors of dataset resolution and loading."""


class DatasetUnavailableError(FileNotFoundError):
    """A dataset's raw files are neither in the cache nor in the mirror and cannot be downloaded."""


class ChecksumMismatchError(ValueError):
    """A raw file's SHA-256 differs from the one recorded in the registry."""
