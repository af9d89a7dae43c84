"""Synthetic scenes with exact ground truth: textured shapes on textured backgrounds.

Used by the tests, the embedded demo and the node's self-check, so that quality can be
measured without any downloaded data. Textures are smooth noise plus stripes, so a class is
never one flat colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    'Scene',
    'interior_point',
    'moving_object_sequence',
    'texture',
    'three_class_scene',
    'two_class_scene',
]


@dataclass(frozen=True)
class Scene:
    """rgb: (H, W, 3) uint8; labels: (H, W) uint8 class ids."""

    rgb: np.ndarray
    labels: np.ndarray


def texture(
    height: int,
    width: int,
    colour: tuple[int, int, int],
    rng: np.random.Generator,
    amplitude: float = 40.0,
    stripe_period: float = 9.0,
) -> np.ndarray:
    """(H, W, 3) float32 texture around `colour`: blurred noise blobs plus oblique stripes."""
    noise = rng.normal(0, 1, (max(2, height // 8), max(2, width // 8), 3)).astype(np.float32)
    blobs = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 0.35, (height, width, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / stripe_period)
    tex = np.asarray(colour, np.float32) + amplitude * (0.6 * blobs + fine)
    return tex + amplitude * 0.5 * stripes[..., None]


def _compose(layers: list[tuple[np.ndarray, np.ndarray]], height: int, width: int) -> Scene:
    rgb = np.zeros((height, width, 3), np.float32)
    labels = np.zeros((height, width), np.uint8)
    for class_id, (tex, mask) in enumerate(layers):
        rgb[mask] = tex[mask]
        labels[mask] = class_id
    return Scene(np.clip(rgb, 0, 255).astype(np.uint8), labels)


def _blob_mask(
    height: int,
    width: int,
    centre: tuple[float, float],
    radii: tuple[float, float],
    rng: np.random.Generator,
    wobble: float = 0.15,
) -> np.ndarray:
    """A star-shaped blob: an ellipse whose radius wobbles with angle."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = (xx - centre[0]) / radii[0], (yy - centre[1]) / radii[1]
    theta = np.arctan2(dy, dx)
    phase = rng.uniform(0, 2 * np.pi, 3)
    r = 1 + wobble * (np.sin(3 * theta + phase[0]) + 0.5 * np.sin(5 * theta + phase[1]))
    return np.hypot(dx, dy) <= r


def two_class_scene(height: int = 120, width: int = 160, seed: int = 0) -> Scene:
    """Background (class 0) with one textured blob (class 1) of a different hue."""
    rng = np.random.default_rng(seed)
    bg = texture(height, width, (90, 140, 80), rng)
    fg = texture(height, width, (200, 90, 60), rng)
    mask = _blob_mask(
        height, width, (width * 0.55, height * 0.5), (width * 0.22, height * 0.3), rng
    )
    return _compose([(bg, np.ones((height, width), bool)), (fg, mask)], height, width)


def three_class_scene(height: int = 120, width: int = 160, seed: int = 0) -> Scene:
    """Textured background (0), a blob (1) and a rectangle (2), each with its own texture."""
    rng = np.random.default_rng(seed)
    bg = texture(height, width, (70, 110, 150), rng)
    blob = texture(height, width, (210, 170, 60), rng)
    rect = texture(height, width, (160, 60, 150), rng)
    blob_mask = _blob_mask(
        height, width, (width * 0.3, height * 0.45), (width * 0.17, height * 0.25), rng
    )
    rect_mask = np.zeros((height, width), bool)
    rect_mask[int(height * 0.25) : int(height * 0.8), int(width * 0.58) : int(width * 0.88)] = True
    layers = [(bg, np.ones((height, width), bool)), (blob, blob_mask), (rect, rect_mask)]
    return _compose(layers, height, width)


def moving_object_sequence(
    frames: int = 20, height: int = 120, width: int = 160, seed: int = 0, speed: float = 2.0
) -> list[Scene]:
    """A textured blob moving left to right across a fixed textured background."""
    rng = np.random.default_rng(seed)
    bg = texture(height, width, (90, 140, 80), rng)
    fg_tex = texture(height, width, (200, 90, 60), rng)
    shape_rng_seed = int(rng.integers(1 << 30))
    scenes = []
    for k in range(frames):
        cx = width * 0.3 + speed * k
        mask = _blob_mask(
            height,
            width,
            (cx, height * 0.5),
            (width * 0.16, height * 0.25),
            np.random.default_rng(shape_rng_seed),
        )
        # the object's texture moves with it
        shift = np.roll(fg_tex, int(round(speed * k)), axis=1)
        scenes.append(
            _compose([(bg, np.ones((height, width), bool)), (shift, mask)], height, width)
        )
    return scenes


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel farthest from its boundary: where a person would click first."""
    dist = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)
