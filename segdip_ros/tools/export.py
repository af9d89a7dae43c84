# SPDX-License-Identifier: Apache-2.0
"""segdip_export: a segdip dataset folder -> COCO JSON with RLE masks.

    segdip_export session_dir/dataset                    # writes session_dir/dataset/coco.json
    segdip_export session_dir/dataset -o coco.json --include-background --min-area 20

One annotation per connected region (8-connected) per class; category ids are the class ids;
class 0 (background) is left out unless --include-background; unlabelled pixels (255) never
become annotations. `file_name` is relative to the dataset folder (images/<name>.png), so
give loaders that folder as the image root (CVAT, FiftyOne, detectron2's load_coco_json,
pycocotools).

RLE is COCO's: column-major run lengths starting with a run of zeros, stored as COCO's
compressed string (the encoding of pycocotools' maskApi rleToString). It is written here in
numpy rather than with pycocotools.mask.encode, so the package needs no compiled COCO
dependency at run time (pycocotools has no rosdep key); the tests check it with pycocotools.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from segdip_ros.offline.dataset import DatasetError, atomic_write_bytes, load_dataset

__all__ = ['main', 'regions', 'rle_counts', 'rle_encode', 'rle_string', 'run', 'to_coco']


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO run lengths of a binary (H, W) mask: column-major, zeros first."""
    flat = np.asarray(mask, bool).ravel(order='F')
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], change, [flat.size])))
    out = counts.tolist()
    return [0] + out if flat[0] else out


def rle_string(counts: Sequence[int]) -> str:
    """COCO's compressed RLE string: LEB128-like, 5 bits a character (offset 48), each count
    after the second stored as the difference to the count two before it."""
    chars = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = x != -1 if ch & 0x10 else x != 0
            if more:
                ch |= 0x20
            chars.append(chr(ch + 48))
    return ''.join(chars)


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """{"size": [H, W], "counts": compressed string} of a binary mask."""
    h, w = mask.shape
    return {'size': [int(h), int(w)], 'counts': rle_string(rle_counts(mask))}


def regions(
    mask: np.ndarray, class_id: int, min_area: int = 1
) -> list[tuple[np.ndarray, list[float], int]]:
    """(binary region, [x, y, w, h] bbox, area) of each 8-connected region of `class_id`."""
    binary = (mask == class_id).astype(np.uint8)
    if not binary.any():
        return []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    out = []
    for k in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[k])
        if area >= min_area:
            out.append((labels == k, [float(x), float(y), float(w), float(h)], area))
    return out


def to_coco(
    dataset_dir: str | Path, include_background: bool = False, min_area: int = 1
) -> dict[str, Any]:
    """The COCO dictionary of a dataset folder (checked with load_dataset first)."""
    ds = load_dataset(dataset_dir, check=True)
    first = 0 if include_background else 1
    cats = [
        {
            'id': int(c['id']),
            'name': str(c['name']),
            'supercategory': 'segdip',
            'color': c.get('color_hex', ''),
        }
        for c in ds.classes
        if int(c['id']) >= first
    ]
    images, anns = [], []
    for image_id, s in enumerate(ds.samples, 1):
        images.append(
            {
                'id': image_id,
                'file_name': s.image_path.relative_to(ds.root).as_posix(),
                'width': s.width,
                'height': s.height,
                'segdip_name': s.name,
                'segdip_stamp_ns': s.stamp_ns,
                'frame_id': s.frame_id,
            }
        )
        mask = s.read_mask()
        for cat in cats:
            for region, bbox, area in regions(mask, cat['id'], min_area):
                anns.append(
                    {
                        'id': len(anns) + 1,
                        'image_id': image_id,
                        'category_id': cat['id'],
                        'segmentation': rle_encode(region),
                        'area': area,
                        'bbox': bbox,
                        'iscrowd': 0,
                    }
                )
    return {
        'info': {
            'description': f'segdip_ros dataset {ds.root.name}',
            'version': '1.0',
            'date_created': datetime.datetime.now(datetime.UTC).isoformat(),
        },
        'licenses': [],
        'images': images,
        'categories': cats,
        'annotations': anns,
    }


def run(args: Sequence[str] | None = None) -> int:
    """CLI body; returns the exit code (0 ok, 1 bad dataset)."""
    ap = argparse.ArgumentParser(prog='segdip_export', description=__doc__.split('\n\n')[0])
    ap.add_argument('dataset', help='dataset folder (classes.json, manifest.jsonl, ...)')
    ap.add_argument('-o', '--output', help='COCO JSON file (default: <dataset>/coco.json)')
    ap.add_argument(
        '--include-background', action='store_true', help='also export class 0 regions'
    )
    ap.add_argument('--min-area', type=int, default=1, help='drop regions smaller than this')
    a = ap.parse_args(args)
    try:
        coco = to_coco(a.dataset, a.include_background, max(1, a.min_area))
    except (DatasetError, OSError, ValueError) as err:
        print(f'segdip_export: {err}', file=sys.stderr)
        return 1
    out = Path(a.output) if a.output else Path(a.dataset) / 'coco.json'
    atomic_write_bytes(out, json.dumps(coco).encode())
    print(
        f'{out}: {len(coco["images"])} images, {len(coco["annotations"])} regions, '
        f'{len(coco["categories"])} categories'
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `segdip_export`."""
    return run(argv)


if __name__ == '__main__':
    sys.exit(main())
