"""Checkpoints of a TrainingSession as data: tensors and JSON-safe values, nothing else.

A checkpoint holds the configuration (the file alone rebuilds the session), the weights, the
optimiser state, the current frame and its annotations, and every other piece of state that
shapes training (the TCL's base, the self-training target, the frame's last refinement and
merge base), so a restored session trains exactly as one that never stopped. Files are read
with ``torch.load(weights_only=True)``: a file holding any pickled Python object is refused,
so whoever can write into a session folder cannot make the node run code.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .annotations import annotation_from_dict
from .config import SessionConfig, config_from_dict, config_to_dict
from .errors import CheckpointError, ConfigError, SegDipError
from .files import fsync_dir
from .refine import CutSettings

if TYPE_CHECKING:
    from .session import TrainingSession, _Refinement

__all__ = [
    'CHECKPOINT_FORMAT',
    'MODEL_FIELDS',
    'load_session',
    'read_state',
    'restore_session',
    'save_state',
    'session_state',
]

CHECKPOINT_FORMAT = 2
# the fields that decide the weights' shapes and meaning: a checkpoint must match them
MODEL_FIELDS = (
    'num_classes',
    'width',
    'input_code',
    'seg_trains_trunk',
    'working_size',
    'network_scale',
)


def _cpu(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().cpu().clone()


def _refinement_state(r: _Refinement | None) -> dict[str, torch.Tensor] | None:
    if r is None:
        return None
    return {
        'probs': r.probs.detach().cpu().clone(),
        'labels': torch.from_numpy(r.labels.copy()),
        'seeds': torch.from_numpy(r.seeds.copy()),
    }


def _refinement_from(state: dict[str, torch.Tensor] | None) -> _Refinement | None:
    from .session import _Refinement

    if state is None:
        return None
    return _Refinement(
        state['probs'].float(),
        state['labels'].numpy().astype(np.int64),
        state['seeds'].numpy().astype(np.int64),
    )


def session_state(s: TrainingSession) -> dict[str, Any]:
    """The state of `s` as a dict of tensors, numbers, strings, lists and dicts."""
    f = s._require_frame()
    assert s._model is not None and s._optimizer is not None
    return {
        'format': CHECKPOINT_FORMAT,
        'config': config_to_dict(s.cfg),
        'cut': asdict(s.cut),
        'model': {k: v.detach().cpu().clone() for k, v in s._model.state_dict().items()},
        'optimizer': _to_cpu(s._optimizer.state_dict()),
        'image': torch.from_numpy(f.image.copy()),
        'annotations': [a.to_dict() for a in f.annotations],
        'previous': _cpu(s._previous),
        'teach_target': _cpu(s._teach_target),
        'refinement': _refinement_state(f.refinement),
        'merge_base': _refinement_state(f.merge_base),
        'corrected': bool(f.corrected),
        'motion': None
        if f.motion is None
        else {
            'warped': torch.from_numpy(f.motion.warped.copy()),
            'confidence': torch.from_numpy(f.motion.confidence.copy()),
        },
        'positions': torch.from_numpy(f.positions.copy()),
        'anchor': None
        if s._anchor is None
        else {
            'image': torch.from_numpy(s._anchor.image.copy()),
            'labels': torch.from_numpy(s._anchor.labels.copy()),
            'positions': torch.from_numpy(s._anchor.positions.copy()),
            'annotated': float(s._anchor.annotated),
        },
        'has_labels': bool(s._has_labels),
        'label_norm': float(s._label_norm),
        'iteration': int(s.iteration),
        'frame_index': int(s.frame_index),
    }


def restore_session(s: TrainingSession, state: dict[str, Any]) -> None:
    """Put `state` (from session_state) into `s`; CheckpointError when it does not fit."""
    try:
        if not isinstance(state, dict) or state.get('format') != CHECKPOINT_FORMAT:
            found = state.get('format') if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(
                f'unsupported checkpoint format {found!r} '
                f'(this version reads format {CHECKPOINT_FORMAT})'
            )
        saved = config_from_dict(state['config'])
        mine = {k: getattr(s.cfg, k) for k in MODEL_FIELDS}
        theirs = {k: getattr(saved, k) for k in MODEL_FIELDS}
        if mine != theirs:
            diff = {k: (theirs[k], mine[k]) for k in MODEL_FIELDS if mine[k] != theirs[k]}
            raise CheckpointError(
                f'checkpoint was made for another engine (saved, wanted): {diff}'
            )
        annotations = [annotation_from_dict(d) for d in state['annotations']]
        image = state['image'].numpy()
        s.set_image(image)
        assert s._model is not None and s._optimizer is not None and s._frame is not None
        s._model.load_state_dict(state['model'])
        s._optimizer.load_state_dict(state['optimizer'])
        s.frame_index = int(state['frame_index'])
        f = s._frame
        f.annotations = annotations
        s._annotations_changed()
        f.refinement = _refinement_from(state['refinement'])
        f.merge_base = _refinement_from(state['merge_base'])
        f.corrected = bool(state['corrected'])
        _restore_tracking(s, state)
        prev, teach = state['previous'], state['teach_target']
        s._previous = None if prev is None else prev.to(s.device)
        s._teach_target = None if teach is None else teach.to(s.device)
        s._has_labels = bool(state['has_labels'])
        s._label_norm = float(state['label_norm'])
        s.iteration = int(state['iteration'])
        s._touch()
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, SegDipError) as err:
        raise CheckpointError(f'cannot restore checkpoint: {err}') from err


def _restore_tracking(s: TrainingSession, state: dict[str, Any]) -> None:
    """The frame's motion and the anchor frame (its colour models, code and labels are
    recomputed from the saved image and labels, exactly as they were made)."""

    from .tracking import Motion

    anchor = state.get('anchor')
    if anchor is not None:  # first: a tracked frame's target depends on it
        frame = s._new_frame(anchor['image'].numpy())
        if anchor.get('positions') is not None:
            s._set_positions(frame, anchor['positions'].numpy())
        labels = anchor['labels'].numpy().astype(np.int64)
        s._anchor = s._make_anchor(frame, labels, float(anchor.get('annotated', 1.0)))
    f = s._frame
    assert f is not None
    motion = state.get('motion')
    if motion is not None:
        s._set_motion(f, Motion(motion['warped'].numpy(), motion['confidence'].numpy()))
        if f.refinement is not None and not f.annotations:  # a tracked frame, cut already
            from .tracking import tracked_frame_target

            band = s.track.band_for(1.0 if s._anchor is None else s._anchor.annotated)
            s._set_track_target(
                f,
                *tracked_frame_target(
                    f.refinement.labels, s.num_classes, s.track.target_confidence, band
                ),
            )
    if state.get('positions') is not None:
        s._set_positions(f, state['positions'].numpy())


def save_state(state: dict[str, Any], path: str) -> None:
    """torch.save to `path` atomically: a temp file, fsync, rename, fsync of the folder."""
    tmp = f'{path}.tmp'
    with open(tmp, 'wb') as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def read_state(path: str) -> dict[str, Any]:
    """The dict saved at `path`, read as data only. CheckpointError when the file is missing,
    torn, or holds anything but tensors and plain values (a pickled object could run code)."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        if 'global' in str(err).lower():  # it names a class or function to call
            raise CheckpointError(
                f'refused checkpoint {path}: it holds Python objects other '
                'than tensors and plain data (loading them could run code)'
            ) from err
        raise CheckpointError(f'cannot read checkpoint {path}: {err}') from err
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(f'cannot read checkpoint {path}: {err}') from err
    if not isinstance(state, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(state).__name__}, not a dict')
    return state


def load_session(
    cls: type[TrainingSession],
    path: str,
    device: str | None = None,
    cut: CutSettings | None = None,
) -> TrainingSession:
    """A new session of class `cls` from the file at `path` (optionally on another device)."""
    state = read_state(path)
    try:
        cfg_dict = dict(state['config'])
        if device is not None:
            cfg_dict['device'] = device
        cfg: SessionConfig = config_from_dict(cfg_dict)
        if cut is None:
            known = {f.name for f in fields(CutSettings)}
            cut = CutSettings(
                **{k: v for k, v in dict(state.get('cut', {})).items() if k in known}
            )
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise CheckpointError(f'checkpoint {path} has no valid configuration: {err}') from err
    session = cls(cfg, cut)
    session.load_state_dict(state)
    return session


def _to_cpu(state: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return state.detach().cpu().clone()
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_to_cpu(v) for v in state]
    return state
