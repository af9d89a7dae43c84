"""SegDIP engine: model, objective, annotations, training session, refinement and metrics.

No ROS imports. The public surface is below; everything else is an implementation detail.
"""
from .annotations import Annotation, Box, Click, Mask, Stroke, annotation_from_dict
from .config import (PRESETS, SessionConfig, config_from_dict, config_to_dict, default_preset,
                     paper_preset, still_preset)
from .device import resolve_device
from .errors import (AnnotationError, CheckpointError, ConfigError, ImageError, SegDipError,
                     TrainingError)
from .metrics import boundary_f_measure, iou, mean_iou
from .refine import CutSettings
from .schedule import FrameDriver, apply_annotation, frame_budget
from .session import Prediction, StepResult, TrainingSession

__all__ = [
    'TrainingSession', 'StepResult', 'Prediction', 'FrameDriver', 'frame_budget',
    'apply_annotation', 'SessionConfig', 'CutSettings', 'default_preset', 'paper_preset',
    'still_preset', 'PRESETS', 'config_from_dict', 'config_to_dict',
    'Annotation', 'Click', 'Stroke', 'Box', 'Mask', 'annotation_from_dict',
    'SegDipError', 'ConfigError', 'AnnotationError', 'ImageError', 'CheckpointError',
    'TrainingError', 'iou', 'mean_iou', 'boundary_f_measure', 'resolve_device',
]
