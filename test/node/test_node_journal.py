# SPDX-License-Identifier: Apache-2.0
"""The write-ahead log and the checked state files, without ROS: the replay plan, torn and
foreign logs, torn, foreign and mismatched checkpoints (each set aside, never deleted), and
the JSON input limits checked before parsing."""

from __future__ import annotations

import json

import pytest
import torch

from segdip_ros.core import CheckpointError, SessionConfig, TrainingSession
from segdip_ros.core.synthetic import two_class_scene
from segdip_ros.node.inputs import MAX_STROKE_POINTS, Command, InputError, parse_annotation_json
from segdip_ros.node.journal import (
    applied_record,
    command_from_record,
    plan_replay,
    queued_record,
    read_journal,
)
from segdip_ros.node.params import engine_config, read_settings
from segdip_ros.node.store import SessionStore

torch.set_num_threads(1)


def _tiny_cfg() -> SessionConfig:
    tiny = {'working_size': 64, 'engine_overrides': ['width=16', 'warmup_iterations=10']}
    return engine_config(read_settings(lambda n: tiny.get(n, _default(n))))


def _default(name: str):
    from segdip_ros.node.params import PARAMS

    return PARAMS[name].default


def _click(x: float, cls: int = 1) -> Command:
    from segdip_ros.core import Click

    return Command('add', Click(x, 10.0, cls), 0, 'test')


def test_replay_plan_requeues_pending_and_reapplies_after_the_checkpoint(tmp_path):
    store = SessionStore(tmp_path)
    store.open_journal(2)
    j = store.journal
    a = j.append(queued_record(_click(1)))
    b = j.append(queued_record(_click(2)))
    j.append(applied_record('s1', 0, 5, (160, 120)), command_id=a['id'])
    ckpt_seq = j.last_seq  # checkpoint written here
    j.append(applied_record('s1', 0, 5, (160, 120)), command_id=b['id'])
    c = j.append(queued_record(_click(3)))  # accepted, never applied
    records = read_journal(store.log_path).records
    plan = plan_replay(records, ckpt_seq, ('s1', 0))
    assert [r['id'] for r in plan.reapply] == [b['id']] and not plan.replace_set
    assert [r['id'] for r in plan.pending] == [c['id']]
    # the node had moved on to frame 1 (image gone): that frame's whole set, on its key
    j.append(applied_record('s1', 1, 6, (160, 120)), command_id=c['id'])
    plan = plan_replay(read_journal(store.log_path).records, ckpt_seq, ('s1', 0))
    assert plan.replace_set and plan.frame == ('s1', 1)
    assert [r['id'] for r in plan.reapply] == [c['id']] and plan.pending == []
    # a checkpoint newer than every applied record: nothing to apply again
    assert plan_replay(read_journal(store.log_path).records, j.last_seq, ('s1', 1)).reapply == []
    # no checkpoint: the last frame's set is restored, undo taken into account
    u = j.append(queued_record(Command('undo', None, 0, 'test')))
    j.append(applied_record('s1', 1, 6, (160, 120)), command_id=u['id'])
    plan = plan_replay(read_journal(store.log_path).records, None, None)
    assert plan.restore == [] and plan.pending == []
    cmd = command_from_record(b)
    assert cmd.id == b['id'] and cmd.annotation.x == 2.0


def test_torn_last_line_and_garbage_are_set_aside_and_good_records_kept(tmp_path):
    store = SessionStore(tmp_path)
    store.open_journal(2)
    ids = [store.journal.append(queued_record(_click(x)))['id'] for x in (1, 2)]
    with open(store.log_path, 'ab') as f:
        f.write(b'{"seq":99,"id":"x","status":"queu')  # killed mid-write
    store2 = SessionStore(tmp_path)
    records, notes = store2.open_journal(2)
    assert len(notes) == 1 and 'the last line is torn' in notes[0], notes
    assert [r['id'] for r in records if r['status'] == 'queued'] == ids
    aside = [
        p.name
        for p in tmp_path.iterdir()
        if p.name.startswith('annotations.') and p.name != 'annotations.jsonl'
    ]
    assert len(aside) == 1 and aside[0].endswith('.damaged.jsonl'), aside
    assert (tmp_path / aside[0]).read_bytes().endswith(b'"status":"queu')  # kept as it was
    # the repaired log goes on with the next seq
    rec = store2.journal.append(queued_record(_click(3)))
    assert rec['seq'] == records[-1]['seq'] + 1
    assert read_journal(store2.log_path).problems == []


def test_a_log_for_another_class_count_is_set_aside_whole(tmp_path):
    store = SessionStore(tmp_path)
    store.open_journal(3)
    store.journal.append(queued_record(_click(1, 2)))
    records, notes = SessionStore(tmp_path).open_journal(2)
    assert records == [] or [r['status'] for r in records] == ['header']
    assert len(notes) == 1 and 'num_classes=3, not 2' in notes[0], notes
    assert any(p.name.endswith('.foreign.jsonl') for p in tmp_path.iterdir())


def _saved(tmp_path) -> tuple[SessionStore, TrainingSession]:
    store = SessionStore(tmp_path)
    store.open_journal(2)
    s = TrainingSession(_tiny_cfg())
    s.set_image(two_class_scene().rgb)
    s.add_annotation(_click(20).annotation)
    store.save_checkpoint(s, 7, 'cam', {'journal_seq': 3, 'frame': ['ab', 2]})
    return store, s


def test_checkpoint_round_trip_with_its_header(tmp_path):
    store, s = _saved(tmp_path)
    r = store.load_checkpoint(_tiny_cfg())
    assert r.session.annotations == s.annotations and r.stamp_ns == 7
    assert r.frame == ('ab', 2) and r.journal_seq == 3
    assert not list(tmp_path.glob('*.tmp')) and not list(tmp_path.glob('*.new'))


def test_torn_foreign_and_unsafe_checkpoints_are_refused(tmp_path):
    store, _ = _saved(tmp_path)
    data = store.checkpoint_path.read_bytes()
    store.checkpoint_path.write_bytes(data[: len(data) // 2])  # torn
    with pytest.raises(CheckpointError, match='cannot use checkpoint.pt: .*cannot read'):
        store.load_checkpoint(_tiny_cfg())
    moved = store.set_checkpoint_aside('unusable')
    assert moved.exists() and not store.checkpoint_path.exists()
    assert any(
        p.name.startswith('checkpoint.') and p.suffix == '.json' and 'unusable' in p.name
        for p in tmp_path.iterdir()
    )

    # a pickle that would run code is refused by the weights-only check
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))

    torch.save({'x': Evil()}, store.checkpoint_path)
    with pytest.raises(CheckpointError, match='could run code'):
        store.load_checkpoint(_tiny_cfg())
    # another working size: foreign
    store2, _ = _saved(tmp_path / 'b')
    other = engine_config(
        read_settings(
            lambda n: {'working_size': 96, 'engine_overrides': ['width=16']}.get(n, _default(n))
        )
    )
    with pytest.raises(CheckpointError, match='another engine'):
        store2.load_checkpoint(other)


def test_checkpoint_header_must_describe_the_checkpoint(tmp_path):
    store, s = _saved(tmp_path)
    meta = json.loads(store.meta_path.read_text())
    # killed between the two renames: the pending header finishes the commit
    s.add_annotation(_click(30).annotation)
    store.save_checkpoint(s, 8, 'cam', {'journal_seq': 4, 'frame': ['ab', 2]})
    new_meta = store.meta_path.read_text()
    (tmp_path / 'checkpoint.json.new').write_text(new_meta)
    store.meta_path.write_text(json.dumps(meta))
    r = store.load_checkpoint(_tiny_cfg())
    assert r.journal_seq == 4 and len(r.session.annotations) == 2
    store.meta_path.write_text(json.dumps(meta))  # and no pending header: refused
    with pytest.raises(CheckpointError, match='sha256 differs'):
        store.load_checkpoint(_tiny_cfg())


@pytest.mark.parametrize(
    'text, key, match',
    [
        ('[' * 5000, 'json', 'nested deeper'),
        ('{"a":' * 3000 + '1' + '}' * 3000, 'json', 'nested deeper'),
        (
            '{"type":"click","x":1,"y":1,"class_id":1,"p":"' + 'x' * 1_100_000 + '"}',
            'json',
            'characters refused',
        ),
        ('{"type":"click","x":NaN,"y":1,"class_id":1}', 'json', 'NaN'),
        ('{"type":"click","x":1e400,"y":1,"class_id":1}', 'outside', 'inf'),
        ('{"type":"click","x":1,"y":1,"class_id":' + '9' * 5000 + '}', 'json', 'not JSON'),
        ('{"type":"click","x":1,"y":1,"class_id":"object"}', 'class', 'not an integer'),
        ('{"type":"box","x0":9,"y0":1,"x1":2,"y1":5,"class_id":1}', 'box', 'negative size'),
        (
            '{"type":"stroke","points":['
            + ','.join(['[1,2]'] * (MAX_STROKE_POINTS + 1))
            + '],"class_id":1}',
            'stroke',
            'points refused',
        ),
        ('{"type":"stroke","points":[[1,1],[2,2]],"class_id":1,"width":1e9}', 'json', 'width'),
        ('\ufffd\ufffd{"type":"click"}', 'json', 'not JSON'),  # what non-UTF-8 bytes become
    ],
)
def test_hostile_json_is_refused_with_a_reason(text, key, match):
    with pytest.raises(InputError, match=match) as info:
        parse_annotation_json(text, 2)
    assert info.value.key == key
