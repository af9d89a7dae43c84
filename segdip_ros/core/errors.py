"""Exceptions raised by the SegDIP engine.

Every message names the bad value, so a ROS node can log it as it is and keep running.
"""

__all__ = [
    'AnnotationError',
    'CheckpointError',
    'ConfigError',
    'ImageError',
    'SegDipError',
    'TrainingError',
]


class SegDipError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigError(SegDipError, ValueError):
    """A configuration value is out of range or of the wrong kind."""


class AnnotationError(SegDipError, ValueError):
    """An annotation is outside the image, names an unknown class, or is degenerate."""


class ImageError(SegDipError, ValueError):
    """An image has the wrong shape, dtype or size."""


class CheckpointError(SegDipError):
    """A checkpoint cannot be read or does not match the session."""


class TrainingError(SegDipError, RuntimeError):
    """A training step failed (non-finite loss, out of memory); the session stays usable."""
