"""SegDIP engine: model, objective, annotations, training session, refinement and metrics.

No ROS imports. The public surface is below; everything else is an implementation detail.
"""

# first: caps the CPU convolution kernels before torch makes any (see numerics)
from . import numerics  # noqa: F401  # isort: skip

from .annotations import Annotation, Box, Click, Mask, Stroke, annotation_from_dict
from .config import (
    PRESETS,
    SessionConfig,
    config_from_dict,
    config_to_dict,
    default_preset,
    paper_preset,
    still_preset,
)
from .device import resolve_device
from .errors import (
    AnnotationError,
    CheckpointError,
    ConfigError,
    ImageError,
    SegDipError,
    TrainingError,
)
from .metrics import boundary_f_measure, iou, mean_iou
from .refine import CutSettings
from .schedule import FrameDriver, apply_annotation, frame_budget
from .session import Prediction, StepResult, TrainingSession

__all__ = [
    'PRESETS',
    'Annotation',
    'AnnotationError',
    'Box',
    'CheckpointError',
    'Click',
    'ConfigError',
    'CutSettings',
    'FrameDriver',
    'ImageError',
    'Mask',
    'Prediction',
    'SegDipError',
    'SessionConfig',
    'StepResult',
    'Stroke',
    'TrainingError',
    'TrainingSession',
    'annotation_from_dict',
    'apply_annotation',
    'boundary_f_measure',
    'config_from_dict',
    'config_to_dict',
    'default_preset',
    'frame_budget',
    'iou',
    'mean_iou',
    'paper_preset',
    'resolve_device',
    'still_preset',
]
