"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class DeepdipError(Exception):
    """A problem with the user's input (bad file, bad option) rather than a bug in deepdip."""


class StoreError(DeepdipError):
    """A cutout store is missing, unreadable or does not follow the format."""
