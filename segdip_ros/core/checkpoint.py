"""Checkpoints of a TrainingSession: everything needed to resume a labelling session.

A checkpoint stores the configuration next to the weights (the file alone rebuilds the session),
the optimiser state, the current frame, its annotations and the TCL target, all on CPU so it
loads on any device.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import replace
from typing import Any

import torch

from .annotations import annotation_from_dict
from .config import config_from_dict, config_to_dict
from .errors import CheckpointError

__all__ = ['CheckpointMixin', 'CHECKPOINT_FORMAT']

CHECKPOINT_FORMAT = 1


class CheckpointMixin:
    """state_dict / load_state_dict / save / load for TrainingSession."""

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: config, model, optimiser, image, annotations."""
        with self._lock:
            self._require_image()
            to_cpu = lambda t: None if t is None else t.detach().cpu()  # noqa: E731
            return {
                'format': CHECKPOINT_FORMAT,
                'config': config_to_dict(self.cfg),
                'model': {k: v.cpu() for k, v in self._model.state_dict().items()},
                'optimizer': _optimizer_state_to_cpu(self._optimizer.state_dict()),
                'image': self._image.copy(),
                'annotations': [a.to_dict() for a in self._annotations],
                'prev_probs': to_cpu(self._prev_probs),
                'has_labels': self._has_labels,
                'label_norm': self._label_norm,
                'iteration': self.iteration,
                'frame_index': self.frame_index,
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from state_dict(); raises CheckpointError when it does not fit."""
        try:
            if state.get('format') != CHECKPOINT_FORMAT:
                raise CheckpointError(f"unsupported checkpoint format {state.get('format')!r}")
            saved = config_from_dict(state['config'])
            mine = (self.cfg.model, self.cfg.working_size, self.cfg.network_scale)
            theirs = (saved.model, saved.working_size, saved.network_scale)
            if theirs != mine:
                raise CheckpointError('checkpoint model/working size/network scale differ from '
                                      f'this session: {theirs} vs {mine}')
            annotations = [annotation_from_dict(d) for d in state['annotations']]
            with self._lock:
                self.set_image(state['image'])
                self._model.load_state_dict(state['model'])
                self._optimizer.load_state_dict(state['optimizer'])
                self._annotations = annotations
                self._update_labels()
                prev = state.get('prev_probs')
                self._prev_probs = None if prev is None else prev.to(self.device)
                self._has_labels = bool(state['has_labels'])
                self._label_norm = float(state.get('label_norm', 1.0))
                self.iteration = int(state['iteration'])
                self.frame_index = int(state['frame_index'])
                self._touch()
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f'cannot restore checkpoint: {err}') from err

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: str | None = None) -> Any:
        """A new session from state_dict(), optionally on another device."""
        try:
            cfg = config_from_dict(state['config'])
        except (KeyError, TypeError) as err:
            raise CheckpointError(f'checkpoint has no valid config: {err}') from err
        if device is not None:
            cfg = replace(cfg, device=device)
        session = cls(cfg)
        session.load_state_dict(state)
        return session

    def save(self, path: str) -> None:
        """Write state_dict() to `path` (atomically: a crash never leaves half a file)."""
        tmp = f'{path}.tmp'
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str, device: str | None = None) -> Any:
        """A session from a file written by save()."""
        try:
            state = torch.load(path, map_location='cpu', weights_only=False)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
            raise CheckpointError(f'cannot read checkpoint {path}: {err}') from err
        return cls.from_state_dict(state, device=device)


def _optimizer_state_to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    def move(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.cpu()
        if isinstance(v, dict):
            return {k: move(x) for k, x in v.items()}
        return v
    return move(state)
