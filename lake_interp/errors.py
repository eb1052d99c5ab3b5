"""Exceptions raised by lake_interp.

Every error a user can trigger with bad input is a :class:`LakeError`, so that command-line tools
and the app can show its message instead of a traceback.

Example:
    >>> from lake_interp.errors import LakeError, ImageReadError
    >>> issubclass(ImageReadError, LakeError)
    True
"""

from __future__ import annotations


class LakeError(Exception):
    """Base class of all errors caused by user input (files, data layout, options, models)."""


class ImageReadError(LakeError):
    """An image or mask file cannot be read or has an unusable size."""


class DataLayoutError(LakeError):
    """A data folder does not follow a supported layout (missing split, empty category, ...)."""


class ConfigError(LakeError, ValueError):
    """An option has an invalid value or a combination of options is not supported."""


class ModelLoadError(LakeError):
    """A model cannot be built or its weights cannot be found (e.g. offline without a local checkpoint)."""
