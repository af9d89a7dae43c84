# SPDX-License-Identifier: Apache-2.0
"""segdip_make_bag: turn a folder of video frames (DAVIS layout) into a rosbag2 for replay and
evaluation.

Layout read: ``DIR/images/<seq>/00000.jpg`` ... and optionally ``DIR/masks/<seq>/00000.png``.
Written per sequence: the camera topic (rgb8 Image, or JPEG CompressedImage with
``--compressed``), ground truth on ``/ground_truth/mask`` (mono8, same header stamp as its frame)
and first-frame annotations on ``/segdip/annotations`` (std_msgs/String, one JSON object each, the
node's schema). Frame k is stamped t0 + k/fps; annotations are recorded 1 us apart just after the
first frame and carry its stamp, so a replay delivers them before frame 1.

Simulated annotations (from the first-frame mask, foreground = mask > 0, class 1; background
class 0), deterministic so a bag can be rebuilt exactly:
- ``--clicks N``: click 1 at the object pixel farthest from the object boundary; then
  alternately a background click at the background pixel farthest from the object (and from
  earlier background clicks) and an object click at the object pixel farthest from the boundary
  and from earlier object clicks.
- ``--strokes``: an object stroke along the longest path of the object's skeleton, and a
  background stroke along the longest path of the background's skeleton (width 3 px).
- ``--box``: the object's bounding box as class 1, plus one background click farthest from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segdip_ros.offline.bagio import (
    BagError,
    BagWriter,
    compressed_msg,
    image_msg,
    ns_to_stamp,
    string_msg,
)

__all__ = [
    'list_sequences',
    'load_sequence',
    'main',
    'run',
    'simulate_box',
    'simulate_clicks',
    'simulate_strokes',
    'write_sequence_bag',
]

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def _farthest(region: np.ndarray) -> tuple[float, float] | None:
    """(x, y) of the pixel of `region` farthest from its complement and from the image border
    treated as outside; None for an empty region."""
    if not region.any():
        return None
    padded = np.pad(region.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def _farthest_bg(
    fg: np.ndarray, excluded: list[tuple[float, float]]
) -> tuple[float, float] | None:
    """Background pixel farthest from the object and from earlier background clicks (the image
    border does not count as object)."""
    bg = (~fg).astype(np.uint8)
    for x, y in excluded:
        bg[int(y), int(x)] = 0
    if not bg.any():
        return None
    if bg.all():  # no object at all: the image centre
        return float(fg.shape[1] // 2), float(fg.shape[0] // 2)
    dist = cv2.distanceTransform(bg, cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def mask_annotation(mask: np.ndarray) -> dict[str, Any]:
    """The whole first-frame mask as one annotation (object > 0 is class 1, the rest class 0):
    the DAVIS semi-supervised protocol, in the ~/annotations schema."""
    from segdip_ros.core import Mask

    return Mask((np.asarray(mask) > 0).astype(np.uint8)).to_dict()


def simulate_clicks(mask: np.ndarray, n: int) -> list[dict[str, Any]]:
    """N alternating clicks (object first) from a first-frame mask, see the module docstring."""
    fg = np.asarray(mask) > 0
    out: list[dict[str, Any]] = []
    obj_clicks: list[tuple[float, float]] = []
    bg_clicks: list[tuple[float, float]] = []
    for i in range(n):
        if i % 2 == 0:
            region = fg.copy()
            for x, y in obj_clicks:
                region[int(y), int(x)] = False
            pt = _farthest(region)
            cls, store = 1, obj_clicks
        else:
            pt = _farthest_bg(fg, bg_clicks)
            cls, store = 0, bg_clicks
        if pt is None:
            continue
        store.append(pt)
        out.append({'type': 'click', 'x': pt[0], 'y': pt[1], 'class_id': cls})
    return out


def _longest_skeleton_path(region: np.ndarray) -> list[tuple[int, int]]:
    """Longest path (in 8-connected steps) of the skeleton of `region`, as (x, y) pixels:
    two breadth-first searches, the usual approximation of a tree's diameter."""
    from skimage.morphology import skeletonize

    skel = skeletonize(region)
    ys, xs = np.nonzero(skel)
    if len(xs) == 0:
        return []
    pts = set(zip(ys.tolist(), xs.tolist()))

    def bfs(start: tuple[int, int]) -> tuple[tuple[int, int], dict]:
        prev = {start: None}
        q = deque([start])
        last = start
        while q:
            last = q.popleft()
            y, x = last
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    nb = (y + dy, x + dx)
                    if nb in pts and nb not in prev:
                        prev[nb] = last
                        q.append(nb)
        return last, prev

    # start from the skeleton pixel nearest the region's deepest point: its largest part
    deep = _farthest(region)
    assert deep is not None
    start = min(pts, key=lambda p: (p[0] - deep[1]) ** 2 + (p[1] - deep[0]) ** 2)
    far, _ = bfs(start)
    end, prev = bfs(far)
    path = []
    node: tuple[int, int] | None = end
    while node is not None:
        path.append((node[1], node[0]))
        node = prev[node]
    return path


def _stroke(region: np.ndarray, cls: int, width: float, max_points: int) -> dict[str, Any] | None:
    path = _longest_skeleton_path(region)
    if len(path) < 2:
        return None
    idx = np.unique(np.linspace(0, len(path) - 1, min(max_points, len(path))).round().astype(int))
    return {
        'type': 'stroke',
        'points': [[float(path[i][0]), float(path[i][1])] for i in idx],
        'class_id': cls,
        'width': float(width),
    }


def simulate_strokes(
    mask: np.ndarray, width: float = 3.0, max_points: int = 32
) -> list[dict[str, Any]]:
    """An object stroke and a background stroke along skeleton paths (module docstring)."""
    fg = np.asarray(mask) > 0
    strokes = [_stroke(fg, 1, width, max_points), _stroke(~fg, 0, width, max_points)]
    return [s for s in strokes if s is not None]


def simulate_box(mask: np.ndarray) -> list[dict[str, Any]]:
    """The object's bounding box (class 1) and a background click farthest from it."""
    fg = np.asarray(mask) > 0
    ys, xs = np.nonzero(fg)
    if len(xs) == 0:
        return []
    box = {
        'type': 'box',
        'x0': float(xs.min()),
        'y0': float(ys.min()),
        'x1': float(xs.max()),
        'y1': float(ys.max()),
        'class_id': 1,
    }
    inside = np.zeros_like(fg)
    inside[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = True
    out = [box]
    pt = _farthest_bg(inside, [])
    if pt is not None and not inside.all():
        out.append({'type': 'click', 'x': pt[0], 'y': pt[1], 'class_id': 0})
    return out


def list_sequences(root: Path) -> list[str]:
    """Sequence names under root/images (sorted)."""
    images = Path(root) / 'images'
    if not images.is_dir():
        raise BagError(f'{root} has no images/ folder (expected DAVIS layout images/<seq>/)')
    seqs = sorted(p.name for p in images.iterdir() if p.is_dir())
    if not seqs:
        raise BagError(f'{images} holds no sequence folders')
    return seqs


def load_sequence(
    root: Path, seq: str, max_frames: int | None = None
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(RGB image, mask or None) per frame, in file-name order; masks must match image sizes."""
    folder = Path(root) / 'images' / seq
    if not folder.is_dir():
        raise BagError(f'no sequence {seq!r} in {root} (have: {list_sequences(root)})')
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)[:max_frames]
    if not files:
        raise BagError(f'{folder} holds no images')
    frames = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BagError(f'cannot read image {f}')
        mpath = Path(root) / 'masks' / seq / (f.stem + '.png')
        mask = cv2.imread(str(mpath), cv2.IMREAD_GRAYSCALE) if mpath.exists() else None
        if mask is not None and mask.shape != bgr.shape[:2]:
            raise BagError(
                f'mask {mpath} is {mask.shape[1]}x{mask.shape[0]}, image {f} is '
                f'{bgr.shape[1]}x{bgr.shape[0]}'
            )
        frames.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mask))
    return frames


def write_sequence_bag(
    out: Path,
    frames: Sequence[tuple[np.ndarray, np.ndarray | None]],
    annotations: Sequence[dict[str, Any]],
    *,
    storage: str = 'sqlite3',
    compressed: bool = False,
    fps: float = 10.0,
    t0: float = 1000.0,
    frame_id: str = 'camera',
    image_topic: str | None = None,
    gt_topic: str = '/ground_truth/mask',
    annotation_topic: str = '/segdip/annotations',
) -> int:
    """Write one sequence as a bag; returns the number of messages written."""
    if fps <= 0:
        raise BagError(f'fps must be > 0, got {fps}')
    topic = image_topic or ('/camera/image_raw/compressed' if compressed else '/camera/image_raw')
    t0_ns = int(round(t0 * 1e9))
    count = 0
    with BagWriter(out, storage) as w:
        for k, (rgb, mask) in enumerate(frames):
            t = t0_ns + int(round(k * 1e9 / fps))
            msg = compressed_msg(rgb, t, frame_id) if compressed else image_msg(rgb, t, frame_id)
            w.write(topic, msg, t)
            count += 1
            if mask is not None:
                w.write(gt_topic, image_msg(mask, t, frame_id, 'mono8'), t)
                count += 1
            if k == 0:
                sec, nsec = ns_to_stamp(t)
                for i, ann in enumerate(annotations):
                    ann = {**ann, 'stamp': ann.get('stamp', {'sec': sec, 'nanosec': nsec})}
                    w.write(annotation_topic, string_msg(json.dumps(ann)), t + (i + 1) * 1000)
                    count += 1
    return count


def _annotations_for(
    args: argparse.Namespace, first_mask: np.ndarray | None
) -> list[dict[str, Any]]:
    if args.annotations:
        try:
            data = json.loads(Path(args.annotations).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise BagError(f'cannot read annotations {args.annotations}: {err}') from err
        if not isinstance(data, list) or not all(
            isinstance(d, dict) and 'type' in d for d in data
        ):
            raise BagError(f'{args.annotations} must hold a JSON list of objects with "type"')
        return data
    if not (args.clicks or args.strokes or args.box or args.mask):
        return []
    if first_mask is None:
        raise BagError('simulated annotations need a first-frame mask (masks/<seq>/...png)')
    anns: list[dict[str, Any]] = []
    if args.mask:
        anns.append(mask_annotation(first_mask))
    if args.box:
        anns += simulate_box(first_mask)
    if args.strokes:
        anns += simulate_strokes(first_mask)
    if args.clicks:
        anns += simulate_clicks(first_mask, args.clicks)
    return anns


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='segdip_make_bag', description=__doc__.split('\n')[0])
    p.add_argument('frames', type=Path, help='dataset folder with images/<seq>/ (DAVIS layout)')
    p.add_argument(
        '--out',
        type=Path,
        required=True,
        help='bag path with --sequence, else a folder receiving one bag per sequence',
    )
    p.add_argument('--sequence', help='only this sequence (default: all)')
    p.add_argument('--storage', choices=('sqlite3', 'mcap'), default='sqlite3')
    p.add_argument('--compressed', action='store_true', help='JPEG CompressedImage topic')
    p.add_argument('--fps', type=float, default=10.0)
    p.add_argument('--t0', type=float, default=1000.0, help='stamp of frame 0, seconds')
    p.add_argument('--frame-id', default='camera')
    p.add_argument('--max-frames', type=int)
    g = p.add_argument_group('first-frame annotations')
    g.add_argument('--annotations', type=Path, help='JSON file: list of annotation objects')
    g.add_argument('--clicks', type=int, default=0, help='simulate N clicks from the mask')
    g.add_argument('--strokes', action='store_true', help='simulate skeleton strokes')
    g.add_argument('--box', action='store_true', help='simulate a bounding box')
    g.add_argument(
        '--mask',
        action='store_true',
        help='the whole first-frame mask as one annotation (DAVIS protocol)',
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Write the bag(s); returns 0."""
    seqs = [args.sequence] if args.sequence else list_sequences(args.frames)
    for seq in seqs:
        frames = load_sequence(args.frames, seq, args.max_frames)
        anns = _annotations_for(args, frames[0][1])
        out = args.out if args.sequence else args.out / seq
        if not args.sequence:
            args.out.mkdir(parents=True, exist_ok=True)
        n = write_sequence_bag(
            out,
            frames,
            anns,
            storage=args.storage,
            compressed=args.compressed,
            fps=args.fps,
            t0=args.t0,
            frame_id=args.frame_id,
        )
        print(
            f'{out}: {len(frames)} frames, {len(anns)} annotations, {n} messages', file=sys.stderr
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (BagError, OSError) as err:
        print(f'segdip_make_bag: error: {err}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
