# SPDX-License-Identifier: Apache-2.0
"""Bag writing and reading (segdip_ros.offline.bagio, tools/make_bag).

Round trips and clear errors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from segdip_ros.offline.bagio import (
    BagError,
    BagReader,
    BagWriter,
    decode_image,
    image_msg,
    stamp_to_ns,
    string_msg,
    typestore,
)
from segdip_ros.tools import make_bag


def make_frames_dir(
    root: Path, seq: str = 'toy', n: int = 4, h: int = 24, w: int = 32, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """A DAVIS-layout folder of n random PNG frames with a moving square as the mask."""
    rng = np.random.default_rng(seed)
    (root / 'images' / seq).mkdir(parents=True)
    (root / 'masks' / seq).mkdir(parents=True)
    frames = []
    for k in range(n):
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[6:18, 4 + k : 16 + k] = 255
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(root / 'images' / seq / f'{k:05d}.png'), bgr)
        cv2.imwrite(str(root / 'masks' / seq / f'{k:05d}.png'), mask)
        frames.append((rgb, mask))
    return frames


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_round_trip_pixels_and_stamps(tmp_path: Path, storage: str) -> None:
    frames = make_frames_dir(tmp_path / 'data')
    bag = tmp_path / 'bag'
    rc = make_bag.main(
        [
            str(tmp_path / 'data'),
            '--sequence',
            'toy',
            '--out',
            str(bag),
            '--storage',
            storage,
            '--fps',
            '5',
            '--t0',
            '12.5',
            '--clicks',
            '3',
        ]
    )
    assert rc == 0
    reader = BagReader(bag)
    assert reader.image_topic == '/camera/image_raw'
    assert reader.frame_count() == 4
    got = list(reader.frames())
    assert len(got) == 4
    for k, (fr, (rgb, mask)) in enumerate(zip(got, frames)):
        np.testing.assert_array_equal(fr.image, rgb)
        np.testing.assert_array_equal(fr.gt, mask)
        assert fr.stamp_ns == 12_500_000_000 + k * 200_000_000
        assert fr.recv_ns == fr.stamp_ns
    anns = reader.annotations()
    assert [a.data['class_id'] for a in anns] == [1, 0, 1]
    assert all(a.stamp_ns == got[0].stamp_ns for a in anns)
    assert all(got[0].recv_ns < a.recv_ns < got[1].recv_ns for a in anns)
    # the first click is inside the object, the background click outside
    m0 = frames[0][1]
    assert m0[int(anns[0].data['y']), int(anns[0].data['x'])] == 255
    assert m0[int(anns[1].data['y']), int(anns[1].data['x'])] == 0


def test_compressed_topic_decodes_close_to_original(tmp_path: Path) -> None:
    make_frames_dir(tmp_path / 'data', n=2, h=32, w=48)
    frames = make_bag.load_sequence(tmp_path / 'data', 'toy')
    smooth = [(cv2.GaussianBlur(rgb, (0, 0), 3), m) for rgb, m in frames]  # JPEG-friendly
    make_bag.write_sequence_bag(tmp_path / 'bag', smooth, [], compressed=True, storage='mcap')
    with pytest.raises(BagError, match='annotation topic /segdip/annotations not in bag'):
        BagReader(tmp_path / 'bag')
    reader = BagReader(tmp_path / 'bag', annotation_optional=True)
    assert reader.annotation_topic is None and reader.annotations() == []
    assert reader.image_topic == '/camera/image_raw/compressed'
    got = list(reader.frames())
    err = np.abs(got[0].image.astype(int) - smooth[0][0].astype(int)).mean()
    assert err < 4.0, err


def test_all_sequences_and_annotation_file(tmp_path: Path) -> None:
    make_frames_dir(tmp_path / 'data', 'a', n=2)
    make_frames_dir(tmp_path / 'data', 'b', n=3)
    ann = [{'type': 'box', 'x0': 1, 'y0': 2, 'x1': 10, 'y1': 12, 'class_id': 1}, {'type': 'undo'}]
    (tmp_path / 'ann.json').write_text(json.dumps(ann))
    assert (
        make_bag.main(
            [
                str(tmp_path / 'data'),
                '--out',
                str(tmp_path / 'bags'),
                '--annotations',
                str(tmp_path / 'ann.json'),
            ]
        )
        == 0
    )
    counts = {s: BagReader(tmp_path / 'bags' / s).frame_count() for s in ('a', 'b')}
    assert counts == {'a': 2, 'b': 3}
    got = [a.data for a in BagReader(tmp_path / 'bags' / 'b').annotations()]
    assert [g['type'] for g in got] == ['box', 'undo']
    assert got[0]['x1'] == 10 and got[0]['stamp'] == {'sec': 1000, 'nanosec': 0}


def test_simulated_strokes_and_box_lie_in_their_regions() -> None:
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 15:45] = 255
    obj, bg = make_bag.simulate_strokes(mask)
    assert obj['class_id'] == 1 and bg['class_id'] == 0 and len(obj['points']) >= 2
    assert all(mask[int(y), int(x)] == 255 for x, y in obj['points'])
    assert all(mask[int(y), int(x)] == 0 for x, y in bg['points'])
    box, click = make_bag.simulate_box(mask)
    assert (box['x0'], box['y0'], box['x1'], box['y1']) == (15, 10, 44, 29)
    assert mask[int(click['y']), int(click['x'])] == 0
    clicks = make_bag.simulate_clicks(mask, 4)
    assert [c['class_id'] for c in clicks] == [1, 0, 1, 0]
    assert len({(c['x'], c['y']) for c in clicks}) == 4


def test_decode_honours_step_padding_and_bgr() -> None:
    ts = typestore()
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = rgb[:, :, ::-1].reshape(2, 9)
    msg = image_msg(rgb, 0)
    msg.encoding, msg.step, msg.data = 'bgr8', 12, padded.reshape(-1)
    raw = ts.serialize_cdr(msg, msg.__msgtype__)
    back = ts.deserialize_cdr(raw, msg.__msgtype__)
    np.testing.assert_array_equal(decode_image(back, msg.__msgtype__), rgb)
    msg.encoding = 'yuv422'
    with pytest.raises(BagError, match='unsupported image encoding'):
        decode_image(msg, msg.__msgtype__)


def _bag_with(tmp_path: Path, gt_size: tuple[int, int] = (24, 32)) -> Path:
    bag = tmp_path / 'bag'
    with BagWriter(bag, 'sqlite3') as w:
        w.write('/camera/image_raw', image_msg(np.zeros((24, 32, 3), np.uint8), 5), 5)
        w.write('/ground_truth/mask', image_msg(np.zeros(gt_size, np.uint8), 5), 5)
        w.write('/segdip/annotations', string_msg('{"type": "clear"}'), 6)
    return bag


def test_mismatched_mask_size_is_a_clear_error(tmp_path: Path) -> None:
    reader = BagReader(_bag_with(tmp_path, gt_size=(12, 16)))
    with pytest.raises(BagError, match='ground-truth mask .* is 16x12, image is 32x24'):
        list(reader.frames())


def test_missing_topic_and_missing_bag(tmp_path: Path) -> None:
    bag = _bag_with(tmp_path)
    with pytest.raises(BagError, match='image topic /nope not in bag'):
        BagReader(bag, image_topic='/nope')
    with pytest.raises(BagError, match='annotation topic /other not in bag'):
        BagReader(bag, annotation_topic='/other')
    assert BagReader(bag, gt_topic='/absent', gt_optional=True).gt_topic is None
    with pytest.raises(BagError, match='does not exist'):
        BagReader(tmp_path / 'nothing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='not a rosbag2 directory'):
        BagReader(tmp_path / 'empty')


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_truncated_bag_is_a_clear_error(tmp_path: Path, storage: str) -> None:
    make_frames_dir(tmp_path / 'data', n=3)
    bag = tmp_path / 'bag'
    make_bag.write_sequence_bag(
        bag, make_bag.load_sequence(tmp_path / 'data', 'toy'), [], storage=storage
    )
    (f,) = [p for p in bag.iterdir() if p.suffix in ('.db3', '.mcap')]
    os.truncate(f, f.stat().st_size // 2)
    with pytest.raises(BagError, match='bag|corrupt|truncated'):
        list(BagReader(bag).frames())


def test_writer_refuses_existing_path_and_bad_storage(tmp_path: Path) -> None:
    with pytest.raises(BagError, match='exists already'):
        BagWriter(tmp_path, 'sqlite3')
    with pytest.raises(BagError, match="storage must be 'sqlite3' or 'mcap'"):
        BagWriter(tmp_path / 'x', 'rosbag1')


def test_make_bag_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert make_bag.main([str(tmp_path), '--out', str(tmp_path / 'o')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'no images/ folder' in err[0]
    assert stamp_to_ns(3, 5) == 3_000_000_005
