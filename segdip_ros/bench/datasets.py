# SPDX-License-Identifier: Apache-2.0
"""Benchmark datasets: image/mask pairs in the layout of ../shared/data.

A dataset folder holds `images/<name>.<ext>` and `masks/<name>.png` of the same size. Masks are
turned into one label convention for every task, so the clicker and the scoring never need to
know where a mask came from:

- binary: 0 background, 1 object, `BINARY_IGNORE` (255) ignored. Source masks are 0/255 with 128
  as an ignore band (the GrabCut benchmark convention); 0/1 masks are accepted too.
- multiclass: class ids as stored, with the dataset's ignore id (e.g. CamVid void = 11).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    'BINARY_IGNORE',
    'IMAGE_EXTENSIONS',
    'DatasetError',
    'Sample',
    'SamplePath',
    'binary_labels',
    'list_samples',
    'load_classes',
    'load_sample',
]

BINARY_IGNORE = 255
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


class DatasetError(ValueError):
    """A dataset folder or file that cannot be used (missing, unreadable, mismatched)."""


@dataclass(frozen=True)
class SamplePath:
    """Where one image and its mask live; loaded lazily so `--limit` stays cheap."""

    name: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Sample:
    """One loaded benchmark sample.

    image: HxWx3 uint8 RGB. labels: HxW uint8 ground truth in the task convention (see module
    docstring). ignore_id: label of pixels excluded from clicks and scores.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    ignore_id: int

    @property
    def valid(self) -> np.ndarray:
        """HxW bool, False on ignored pixels."""
        return self.labels != self.ignore_id


def list_samples(root: str | Path, limit: int | None = None) -> list[SamplePath]:
    """Pairs of `root`/images/<name>.<ext> and `root`/masks/<name>.png, sorted by name.

    Images without a mask are skipped (a dataset may hold unlabelled frames); `limit` keeps
    the first N by name. Raises DatasetError when the folder layout is wrong or nothing pairs.
    """
    root = Path(root)
    img_dir, mask_dir = root / 'images', root / 'masks'
    if not img_dir.is_dir() or not mask_dir.is_dir():
        raise DatasetError(f'{root} must contain images/ and masks/ folders')
    pairs = []
    for img in sorted(img_dir.iterdir()):
        if img.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        mask = mask_dir / f'{img.stem}.png'
        if mask.is_file():
            pairs.append(SamplePath(img.stem, img, mask))
    if not pairs:
        raise DatasetError(f'no image/mask pairs found in {root}')
    if limit is not None:
        if limit < 1:
            raise DatasetError(f'limit must be >= 1, got {limit}')
        pairs = pairs[:limit]
    return pairs


def binary_labels(mask: np.ndarray) -> np.ndarray:
    """0/255 mask with a 128 ignore band (or a 0/1 mask) -> 0/1 labels with BINARY_IGNORE."""
    mask = np.asarray(mask)
    if mask.max(initial=0) <= 1:
        return mask.astype(np.uint8)
    labels = np.zeros(mask.shape, np.uint8)
    labels[mask > 128] = 1
    labels[mask == 128] = BINARY_IGNORE
    return labels


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f'cannot read image {path}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetError(f'cannot read mask {path}')
    if mask.ndim != 2:
        raise DatasetError(f'mask {path} must be single-channel, got shape {mask.shape}')
    return mask


def load_sample(path: SamplePath, task: str, ignore_id: int | None = None) -> Sample:
    """Read one pair. task 'binary' converts the mask with binary_labels(); 'multiclass' keeps
    the ids and uses `ignore_id` (None: nothing ignored, encoded as 255 which no class uses)."""
    image = _read_image(path.image)
    mask = _read_mask(path.mask)
    if mask.shape != image.shape[:2]:
        raise DatasetError(f'{path.name}: mask {mask.shape} and image {image.shape[:2]} differ')
    if task == 'binary':
        return Sample(path.name, image, binary_labels(mask), BINARY_IGNORE)
    if task == 'multiclass':
        ign = 255 if ignore_id is None else int(ignore_id)
        return Sample(path.name, image, mask.astype(np.uint8), ign)
    raise DatasetError(f"task must be 'binary' or 'multiclass', got {task!r}")


def load_classes(path: str | Path, ignore_id: int | None) -> dict[int, str]:
    """classes.json ({"0": "Sky", ...}) -> {id: name} without the ignore id."""
    try:
        raw = json.loads(Path(path).read_text())
        classes = {int(k): str(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError) as err:
        raise DatasetError(f'cannot read classes file {path}: {err}') from err
    classes.pop(ignore_id, None)
    if not classes:
        raise DatasetError(f'{path} lists no classes besides the ignore id {ignore_id}')
    return dict(sorted(classes.items()))
