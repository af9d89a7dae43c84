# SPDX-License-Identifier: Apache-2.0
"""Read and write the rosbag2 recordings the tools use, with the pure-Python `rosbags` package.

No rclpy here: bags are made and evaluated on machines without a ROS install, and the replay
tool publishes the raw CDR bytes this module hands it. Every failure a user can cause (a
missing or corrupt bag, a topic that is not there, masks of the wrong size) is raised as
`BagError`, a ValueError whose message names the bag and the problem, so the CLIs can print
one line instead of a traceback.

Times are integers in nanoseconds; `stamp_to_ns` / `ns_to_stamp` convert to the
builtin_interfaces/Time (sec, nanosec) pair that headers and annotation JSON use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    'COMPRESSED_TYPE',
    'IMAGE_TYPE',
    'STRING_TYPE',
    'BagAnnotation',
    'BagError',
    'BagFrame',
    'BagReader',
    'BagWriter',
    'compressed_msg',
    'decode_image',
    'image_msg',
    'ns_to_stamp',
    'open_reader',
    'stamp_to_ns',
    'string_msg',
    'typestore',
]

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
STRING_TYPE = 'std_msgs/msg/String'
_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, '8UC1': 1, '8UC3': 3}


class BagError(ValueError):
    """A bag is missing, corrupt or truncated, lacks a topic, or holds inconsistent data."""


@lru_cache(maxsize=1)
def typestore() -> Any:
    """The rosbags type store used to write bags: Kilted, whose sensor/std message
    definitions (and so their RIHS01 hashes) are the same as Jazzy's."""
    from rosbags.typesys import Stores, get_typestore

    store = getattr(Stores, 'ROS2_KILTED', None) or Stores.ROS2_JAZZY
    return get_typestore(store)


def stamp_to_ns(sec: int, nanosec: int) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(sec) * 1_000_000_000 + int(nanosec)


def ns_to_stamp(ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> (sec, nanosec)."""
    return int(ns) // 1_000_000_000, int(ns) % 1_000_000_000


def _header(stamp_ns: int, frame_id: str) -> Any:
    ts = typestore()
    sec, nsec = ns_to_stamp(stamp_ns)
    time = ts.types['builtin_interfaces/msg/Time'](sec=sec, nanosec=nsec)
    return ts.types['std_msgs/msg/Header'](stamp=time, frame_id=frame_id)


def image_msg(
    img: np.ndarray, stamp_ns: int, frame_id: str = 'camera', encoding: str | None = None
) -> Any:
    """A sensor_msgs/Image from an HxW (mono8) or HxWx3 uint8 array (rgb8 unless told)."""
    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise BagError(f'image must be HxW or HxWxC uint8, got {img.shape} {img.dtype}')
    if encoding is None:
        encoding = 'mono8' if img.ndim == 2 else 'rgb8'
    h, w = img.shape[:2]
    ch = 1 if img.ndim == 2 else img.shape[2]
    return typestore().types[IMAGE_TYPE](
        header=_header(stamp_ns, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * ch,
        data=img.reshape(-1),
    )


def compressed_msg(
    rgb: np.ndarray, stamp_ns: int, frame_id: str = 'camera', quality: int = 95
) -> Any:
    """A sensor_msgs/CompressedImage (JPEG) from HxWx3 RGB, with the format string
    image_transport writes ("rgb8; jpeg compressed bgr8")."""
    import cv2

    ok, buf = cv2.imencode(
        '.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise BagError(f'JPEG encoding failed for an image of shape {rgb.shape}')
    return typestore().types[COMPRESSED_TYPE](
        header=_header(stamp_ns, frame_id),
        format='rgb8; jpeg compressed bgr8',
        data=np.asarray(buf, np.uint8).reshape(-1),
    )


def string_msg(text: str) -> Any:
    """A std_msgs/String."""
    return typestore().types[STRING_TYPE](data=text)


def decode_image(msg: Any, msgtype: str) -> np.ndarray:
    """Image or CompressedImage message -> HxWx3 RGB uint8 (colour) or HxW uint8 (mono8).

    Honours `step` row padding; unsupported encodings raise BagError.
    """
    import cv2

    if msgtype == COMPRESSED_TYPE:
        img = cv2.imdecode(np.asarray(msg.data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise BagError(f'cannot decode compressed image (format {msg.format!r})')
        if img.ndim == 3:
            code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
            img = cv2.cvtColor(img, code)
        return img
    enc = str(msg.encoding)
    ch = _CHANNELS.get(enc)
    if ch is None:
        raise BagError(f'unsupported image encoding {enc!r} (supported: {sorted(_CHANNELS)})')
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, np.uint8)
    if step < w * ch or data.size < step * h:
        raise BagError(f'image data too short: {data.size} bytes for {h}x{w} {enc} step {step}')
    img = data[: step * h].reshape(h, step)[:, : w * ch].reshape(h, w, ch)
    if ch == 1:
        return img[:, :, 0].copy()
    if enc.startswith('bgr'):
        img = img[:, :, 2::-1]
    return np.ascontiguousarray(img[:, :, :3])


class BagWriter:
    """Context manager over rosbags' Writer that registers topics on first use.

    >>> with BagWriter(path, storage='mcap') as w:
    ...     w.write('/camera/image_raw', image_msg(rgb, t), t)
    """

    def __init__(self, path: str | Path, storage: str = 'sqlite3') -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

        plugins = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}
        if storage not in plugins:
            raise BagError(f"storage must be 'sqlite3' or 'mcap', got {storage!r}")
        try:
            self._writer = Writer(Path(path), version=9, storage_plugin=plugins[storage])
        except WriterError as err:
            raise BagError(f'cannot create bag {path}: {err}') from err
        self._connections: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()

    def write(self, topic: str, msg: Any, t_ns: int) -> None:
        """Serialize `msg` (a typestore message) and record it on `topic` at bag time t_ns."""
        msgtype = msg.__msgtype__
        conn = self._connections.get(topic)
        if conn is None:
            conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
            self._connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise BagError(f'topic {topic} holds {conn.msgtype}, cannot write {msgtype}')
        self._writer.write(conn, int(t_ns), typestore().serialize_cdr(msg, msgtype))


@dataclass
class BagFrame:
    """One camera frame of a bag: header stamp (ns), frame_id, image, and its ground truth."""

    index: int
    stamp_ns: int
    frame_id: str
    image: np.ndarray  # HxWx3 uint8 RGB
    gt: np.ndarray | None = None  # HxW uint8 mask, same size, or None
    recv_ns: int = 0  # bag (record) time of the image message


@dataclass
class BagAnnotation:
    """One annotation message: parsed JSON, the frame stamp it names (ns, or None), and the
    bag time it was recorded at (ns), which ties an unstamped annotation to a frame."""

    data: dict[str, Any]
    stamp_ns: int | None
    recv_ns: int


def open_reader(path: str | Path) -> Any:
    """An opened rosbags AnyReader on a rosbag2 directory; failures become BagError.
    Close it with `.close()`."""
    from rosbags.highlevel import AnyReader

    p = Path(path)
    if not p.exists():
        raise BagError(f'bag {p} does not exist')
    if p.is_dir() and not (p / 'metadata.yaml').exists():
        raise BagError(f'{p} is not a rosbag2 directory (no metadata.yaml)')
    try:
        reader = AnyReader([p], default_typestore=typestore())
        reader.open()
    except Exception as err:  # rosbags raises many kinds on damaged input
        raise BagError(f'cannot open bag {p}: {type(err).__name__}: {err}') from err
    return reader


@dataclass
class BagReader:
    """Reads a tracking bag: camera frames (raw or compressed), annotations, ground truth.

    Annotations and ground truth are small and read first, so that frames can stream; ground
    truth is matched to frames by header stamp. `image_topic=None` picks the image topic that is
    not the ground truth (preferring /camera/image_raw). A named topic missing from the bag
    raises BagError, except ground truth / annotations when marked optional.
    """

    path: Path
    image_topic: str | None = None
    annotation_topic: str | None = '/segdip/annotations'
    gt_topic: str | None = '/ground_truth/mask'
    gt_optional: bool = False  # a missing ground-truth topic means "no ground truth"
    annotation_optional: bool = False  # a missing annotation topic means "no annotations"
    topics: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        reader = open_reader(self.path)
        try:
            self.topics = {c.topic: c.msgtype for c in reader.connections}
        finally:
            reader.close()
        if self.gt_optional and self.gt_topic not in self.topics:
            self.gt_topic = None
        if self.annotation_optional and self.annotation_topic not in self.topics:
            self.annotation_topic = None
        self.image_topic = self._pick_image_topic()
        for name, topic in (
            ('annotation', self.annotation_topic),
            ('ground-truth', self.gt_topic),
        ):
            if topic and topic not in self.topics:
                raise BagError(
                    f'{name} topic {topic} not in bag {self.path} (topics: {sorted(self.topics)})'
                )

    def _pick_image_topic(self) -> str:
        kinds = (IMAGE_TYPE, COMPRESSED_TYPE)
        if self.image_topic:
            if self.image_topic not in self.topics:
                raise BagError(
                    f'image topic {self.image_topic} not in bag {self.path} '
                    f'(topics: {sorted(self.topics)})'
                )
            if self.topics[self.image_topic] not in kinds:
                raise BagError(
                    f'topic {self.image_topic} is {self.topics[self.image_topic]}, '
                    'not an Image or CompressedImage'
                )
            return self.image_topic
        cands = sorted(
            t
            for t, ty in self.topics.items()
            if ty in kinds and t != self.gt_topic and not t.startswith('/segdip/')
        )
        for pref in ('/camera/image_raw', '/camera/image_raw/compressed'):
            if pref in cands:
                return pref
        if len(cands) != 1:
            raise BagError(
                f'cannot choose the image topic of bag {self.path} among {cands}; '
                'name it with --image-topic'
            )
        return cands[0]

    def _messages(self, topic: str) -> Iterator[tuple[int, Any, str]]:
        reader = open_reader(self.path)
        try:
            conns = [c for c in reader.connections if c.topic == topic]
            for conn, t_ns, raw in reader.messages(connections=conns):
                yield t_ns, reader.deserialize(raw, conn.msgtype), conn.msgtype
        except BagError:
            raise
        except Exception as err:  # truncated sqlite/mcap files fail in many ways
            raise BagError(
                f'bag {self.path} is corrupt or truncated (reading {topic}): '
                f'{type(err).__name__}: {err}'
            ) from err
        finally:
            reader.close()

    def annotations(self) -> list[BagAnnotation]:
        """All annotation messages in bag order; malformed JSON raises BagError."""
        out: list[BagAnnotation] = []
        if not self.annotation_topic:
            return out
        for t_ns, msg, _ in self._messages(self.annotation_topic):
            try:
                data = json.loads(msg.data)
            except json.JSONDecodeError as err:
                raise BagError(
                    f'annotation at t={t_ns} ns is not JSON: {msg.data[:80]!r}'
                ) from err
            if not isinstance(data, dict) or 'type' not in data:
                raise BagError(
                    f'annotation at t={t_ns} ns is not an object with "type": {msg.data[:80]!r}'
                )
            stamp = data.get('stamp')
            stamp_ns = None
            if stamp is not None:
                try:
                    stamp_ns = stamp_to_ns(stamp['sec'], stamp.get('nanosec', 0))
                except (TypeError, KeyError, ValueError) as err:
                    raise BagError(f'bad "stamp" in annotation at t={t_ns} ns: {stamp!r}') from err
            out.append(BagAnnotation(data=data, stamp_ns=stamp_ns, recv_ns=t_ns))
        return out

    def ground_truth(self) -> dict[int, np.ndarray]:
        """Ground-truth masks keyed by header stamp (ns)."""
        if not self.gt_topic:
            return {}
        gts: dict[int, np.ndarray] = {}
        for _, msg, ty in self._messages(self.gt_topic):
            m = decode_image(msg, ty)
            gts[stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)] = (
                m if m.ndim == 2 else m[:, :, 0]
            )
        return gts

    def frames(self, max_frames: int | None = None) -> Iterator[BagFrame]:
        """Camera frames in bag order, each with its ground truth (None when absent)."""
        gts = self.ground_truth()
        assert self.image_topic is not None
        for i, (t_ns, msg, ty) in enumerate(self._messages(self.image_topic)):
            if max_frames is not None and i >= max_frames:
                return
            img = decode_image(msg, ty)
            if img.ndim == 2:
                img = np.repeat(img[:, :, None], 3, axis=2)
            stamp = stamp_to_ns(msg.header.stamp.sec, msg.header.stamp.nanosec)
            gt = gts.get(stamp)
            if gt is not None and gt.shape != img.shape[:2]:
                raise BagError(
                    f'ground-truth mask at stamp {stamp} ns is {gt.shape[1]}x'
                    f'{gt.shape[0]}, image is {img.shape[1]}x{img.shape[0]}'
                )
            yield BagFrame(i, stamp, str(msg.header.frame_id), img, gt, t_ns)

    def frame_count(self) -> int:
        """Number of messages on the image topic (from the bag's index, no decoding)."""
        reader = open_reader(self.path)
        try:
            return sum(c.msgcount for c in reader.connections if c.topic == self.image_topic)
        finally:
            reader.close()
