"""SegDIP engine: model, losses, annotations, training session and metrics. No ROS imports."""
from .annotations import Annotation, Box, Click, Stroke, annotation_from_dict
from .config import (PRESETS, LossConfig, ModelConfig, SessionConfig, config_from_dict,
                     config_to_dict, default_preset, paper_preset, still_preset)
from .device import resolve_amp_dtype, resolve_device
from .errors import (AnnotationError, CheckpointError, ConfigError, ImageError, SegDipError,
                     TrainingError)
from .metrics import boundary_f_measure, iou, mean_iou
from .session import Prediction, StepResult, TrainingSession

__all__ = [
    'TrainingSession', 'StepResult', 'Prediction',
    'SessionConfig', 'ModelConfig', 'LossConfig', 'default_preset', 'paper_preset', 'still_preset',
    'PRESETS',
    'config_from_dict', 'config_to_dict',
    'Annotation', 'Click', 'Stroke', 'Box', 'annotation_from_dict',
    'SegDipError', 'ConfigError', 'AnnotationError', 'ImageError', 'CheckpointError',
    'TrainingError',
    'iou', 'mean_iou', 'boundary_f_measure', 'resolve_device', 'resolve_amp_dtype',
]
