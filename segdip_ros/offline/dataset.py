# SPDX-License-Identifier: Apache-2.0
"""Labelled frames as a segmentation dataset that trains without conversion (no ROS).

Layout of a dataset folder (the node writes `session_dir/dataset/`)::

    images/<name>.png      the camera frame, RGB
    masks/<name>.png       class ids (uint8), 255 = unlabelled
    overlays/<name>.png    the overlay the operator saw (optional, for browsing)
    classes.json           {"classes": [{"id", "name", "color", "color_hex"}], "unlabelled_id"}
    manifest.jsonl         one JSON object a line per sample: name, image, mask, stamp,
                           stamp_ns, frame_id, width, height, annotations, source

Every file is written to a temporary file, fsynced and renamed over its target (os.replace),
and the manifest is rewritten that way after the sample's files: a crash leaves either the
whole sample or no manifest record for it (an unlisted image is ignored by load_dataset).
A frame saved again (same stamp and frame_id, stamp not 0) replaces its earlier sample.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segdip_ros.core.files import fsync_dir

__all__ = [
    'CLASSES',
    'MANIFEST',
    'UNLABELLED',
    'Dataset',
    'DatasetError',
    'DatasetWriter',
    'Sample',
    'atomic_write_bytes',
    'load_dataset',
]

UNLABELLED = 255
MANIFEST = 'manifest.jsonl'
CLASSES = 'classes.json'
_SAFE = re.compile(r'[^A-Za-z0-9_.-]+')


class DatasetError(ValueError):
    """A dataset folder is inconsistent or a sample is invalid; the message says where."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def _png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.png', array)
    if not ok:
        raise DatasetError(f'PNG encoding of a {array.shape} {array.dtype} array failed')
    return buf.tobytes()


def classes_record(names: Sequence[str], colors: Sequence[tuple[int, int, int]]) -> dict[str, Any]:
    """classes.json content (the same schema as the node's label info)."""
    if len(names) != len(colors):
        raise DatasetError(f'{len(names)} class names but {len(colors)} colours')
    return {
        'classes': [
            {
                'id': i,
                'name': str(n),
                'color': [int(c) for c in colors[i]],
                'color_hex': '#%02x%02x%02x' % tuple(int(c) for c in colors[i]),
            }
            for i, n in enumerate(names)
        ],
        'unlabelled_id': UNLABELLED,
    }


@dataclass(frozen=True)
class Sample:
    """One manifest record; paths are absolute."""

    name: str
    image_path: Path
    mask_path: Path
    stamp_ns: int
    frame_id: str
    width: int
    height: int
    annotations: tuple[dict[str, Any], ...]
    source: str = 'save'

    def read_image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        bgr = cv2.imread(str(self.image_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f'cannot read image {self.image_path}')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def read_mask(self) -> np.ndarray:
        """(H, W) uint8 class ids, 255 = unlabelled."""
        mask = cv2.imread(str(self.mask_path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise DatasetError(f'cannot read mask {self.mask_path}')
        return mask


@dataclass(frozen=True)
class Dataset:
    root: Path
    classes: tuple[dict[str, Any], ...]
    unlabelled_id: int
    samples: tuple[Sample, ...]

    @property
    def class_names(self) -> list[str]:
        return [str(c['name']) for c in self.classes]


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f'{path}:{i}: not JSON ({err})') from err
        if not isinstance(rec, dict) or not isinstance(rec.get('name'), str):
            raise DatasetError(f'{path}:{i}: a record needs a "name"')
        out.append(rec)
    return out


class DatasetWriter:
    """Adds samples to a dataset folder (created when missing, appended to when present).

    Args:
        root: the dataset folder.
        class_names, class_colors: written to classes.json; when the folder already has a
            classes.json with other names, DatasetError (a dataset has one class list).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        class_names: Sequence[str],
        class_colors: Sequence[tuple[int, int, int]],
    ) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.classes = classes_record(class_names, class_colors)
        cpath = self.root / CLASSES
        if cpath.exists():
            old = json.loads(cpath.read_text(encoding='utf-8'))
            old_names = [c.get('name') for c in old.get('classes', [])]
            if old_names != list(class_names):
                raise DatasetError(
                    f'{self.root} holds classes {old_names}, not '
                    f'{list(class_names)}: use another folder for this class list'
                )
        if not cpath.exists() or json.loads(cpath.read_text(encoding='utf-8')) != self.classes:
            atomic_write_bytes(cpath, (json.dumps(self.classes, indent=1) + '\n').encode())
        self._records = _read_manifest(self.root / MANIFEST)

    @staticmethod
    def classes_for(
        names: Sequence[str], colors: Sequence[tuple[int, int, int]]
    ) -> list[dict[str, Any]]:
        """The "classes" list classes.json gets for these names and colours."""
        return classes_record(names, colors)['classes']

    def __len__(self) -> int:
        return len(self._records)

    def _name(self, stamp_ns: int, frame_id: str) -> tuple[str, int | None]:
        """(name, index of the record it replaces or None)."""
        base = f'{stamp_ns // 1_000_000_000}_{stamp_ns % 1_000_000_000:09d}'
        fid = _SAFE.sub('_', frame_id).strip('_.')[:40]
        base = f'{base}_{fid}' if fid else base
        names = {r['name']: i for i, r in enumerate(self._records)}
        if stamp_ns != 0:  # the same frame: replaces its record (or an unlisted orphan)
            return base, names.get(base)
        name, k = base, 1
        while name in names or (self.root / 'images' / f'{name}.png').exists():
            name, k = f'{base}_{k}', k + 1
        return name, None

    def add(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        annotations: Sequence[dict[str, Any]],
        stamp_ns: int,
        frame_id: str,
        overlay: np.ndarray | None = None,
        source: str = 'save',
    ) -> dict[str, Any]:
        """Write one sample; returns its manifest record.

        image: (H, W, 3) uint8 RGB; mask: (H, W) integer class ids or 255; overlay: optional
        (H, W, 3) uint8 RGB; annotations: dicts in the `~/annotations` schema; stamp_ns: the
        frame's stamp in nanoseconds; source: why it was written ('save', 'keyframe', ...).
        """
        image = np.asarray(image)
        mask = np.asarray(mask)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DatasetError(f'image must be (H, W, 3) uint8, got {image.shape} {image.dtype}')
        if mask.shape != image.shape[:2]:
            raise DatasetError(f'mask {mask.shape} does not match image {image.shape[:2]}')
        n = len(self.classes['classes'])
        bad = (mask != UNLABELLED) & ((mask < 0) | (mask >= n))
        if bad.any():
            raise DatasetError(
                f'mask has ids outside 0..{n - 1} and {UNLABELLED}: '
                f'{sorted(set(np.unique(mask[bad]).tolist()))[:5]}'
            )
        name, replaces = self._name(int(stamp_ns), frame_id)
        rel_img, rel_mask = f'images/{name}.png', f'masks/{name}.png'
        atomic_write_bytes(self.root / rel_img, _png(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)))
        atomic_write_bytes(self.root / rel_mask, _png(mask.astype(np.uint8)))
        record: dict[str, Any] = {
            'name': name,
            'image': rel_img,
            'mask': rel_mask,
            'stamp': {
                'sec': int(stamp_ns) // 1_000_000_000,
                'nanosec': int(stamp_ns) % 1_000_000_000,
            },
            'stamp_ns': int(stamp_ns),
            'frame_id': frame_id,
            'width': int(image.shape[1]),
            'height': int(image.shape[0]),
            'annotations': list(annotations),
            'source': source,
        }
        if overlay is not None:
            record['overlay'] = f'overlays/{name}.png'
            atomic_write_bytes(
                self.root / record['overlay'],
                _png(cv2.cvtColor(np.asarray(overlay, np.uint8), cv2.COLOR_RGB2BGR)),
            )
        records = list(self._records)
        if replaces is None:
            records.append(record)
        else:
            records[replaces] = record
        text = ''.join(json.dumps(r, separators=(',', ':')) + '\n' for r in records)
        atomic_write_bytes(self.root / MANIFEST, text.encode())
        self._records = records
        return record

    def paths(self, record: dict[str, Any]) -> list[Path]:
        """The files of one record (image, mask, overlay when present, manifest)."""
        keys = [k for k in ('image', 'mask', 'overlay') if k in record]
        return [self.root / record[k] for k in keys] + [self.root / MANIFEST]


def _inside(root: Path, rel: Any, what: str) -> Path:
    if not isinstance(rel, str) or rel.startswith('/') or '..' in Path(rel).parts:
        raise DatasetError(f'{what} path {rel!r} must be relative, inside {root}')
    return root / rel


def load_dataset(path: str | os.PathLike[str], check: bool = True) -> Dataset:
    """Read a dataset folder back. With `check`, every sample's image and mask are read:
    both exist, sizes match the manifest, mask ids are class ids or the unlabelled id, names
    are unique. Raises DatasetError naming the first problem."""
    root = Path(path).expanduser()
    cpath = root / CLASSES
    if not cpath.exists():
        raise DatasetError(f'{root} is not a dataset: {CLASSES} is missing')
    info = json.loads(cpath.read_text(encoding='utf-8'))
    classes = tuple(info.get('classes', []))
    if not classes or [c.get('id') for c in classes] != list(range(len(classes))):
        raise DatasetError(f'{cpath}: class ids must be 0..n-1 in order')
    unlabelled = int(info.get('unlabelled_id', UNLABELLED))
    samples, seen = [], set()
    for rec in _read_manifest(root / MANIFEST):
        name = rec['name']
        if name in seen:
            raise DatasetError(f'{root / MANIFEST}: sample {name!r} is listed twice')
        seen.add(name)
        try:
            sample = Sample(
                name,
                _inside(root, rec.get('image'), 'image'),
                _inside(root, rec.get('mask'), 'mask'),
                int(rec['stamp_ns']),
                str(rec.get('frame_id', '')),
                int(rec['width']),
                int(rec['height']),
                tuple(rec.get('annotations', [])),
                str(rec.get('source', 'save')),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(
                f'{root / MANIFEST}: record {name!r} is incomplete ({err})'
            ) from err
        if check:
            img, mask = sample.read_image(), sample.read_mask()
            want = (sample.height, sample.width)
            if img.shape[:2] != want or mask.shape != want:
                raise DatasetError(
                    f'sample {name!r}: image {img.shape[:2]} / mask {mask.shape} '
                    f'do not match the manifest size {want}'
                )
            ids = set(np.unique(mask).tolist()) - {unlabelled}
            if ids - set(range(len(classes))):
                raise DatasetError(
                    f'sample {name!r}: mask ids {sorted(ids)} outside 0..{len(classes) - 1}'
                )
        samples.append(sample)
    return Dataset(root, classes, unlabelled, tuple(samples))
