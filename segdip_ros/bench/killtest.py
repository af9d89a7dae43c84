# SPDX-License-Identifier: Apache-2.0
"""`segdip-bench killtest --kills 50`: SIGKILL the node at random moments, restart, check that
no accepted annotation is lost or applied twice.

Accepted means: the command has a `queued` record in session_dir/annotations.jsonl (the node
writes and fsyncs it in the subscription callback, before queueing the command). Clicks still
in flight when the node dies have no record and are not counted as accepted.

A chain runs on a fresh session_dir and kills the node once in each state, in this order:
`waiting` (no image yet), `warm-up` (first frame, clicks queued behind the warm-up),
`training` (still mode, clicks being applied), `switching` (tracking mode, frames streaming at
30 Hz, the node switching frames), `saving` (during a ~/save call). The moment of each kill
is random (seeded) within the state. After every kill the node is started again on the same
session_dir and, once it has settled, checked:

- every accepted id has exactly one `applied` or `refused` record (0 = lost, 2+ = duplicated);
- the annotations in the node's checkpoint equal the set the log gives for the checkpoint's
  frame (the adds applied on that frame in log order, undo removing the last, clear all):
  one missing = lost, one extra = duplicated.

The table counts kills per state, accepted commands, lost and duplicated ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segdip_ros.bench.nodeproc import DURABLE_PARAMS, NodeClient, NodeProcess, read_log

__all__ = [
    'STATES',
    'KillReport',
    'KillSettings',
    'add_options',
    'check_session',
    'run_cli',
    'run_kills',
]

STATES = ('waiting', 'warm-up', 'training', 'switching', 'saving')
KILL_PARAMS = {
    **DURABLE_PARAMS,
    'engine_overrides': [
        'width=16',
        'warmup_iterations=200',
        'iterations_first=20',
        'iterations_per_click=5',
        'iterations_per_frame=5',
        'refine=none',
    ],
}
CLICK_RATE = 15.0  # commands per second during a kill round (3 while frames stream, so the
#                    node's budget runs out and it switches frames between clicks)


@dataclass
class KillSettings:
    kills: int = 50
    seed: int = 0
    domain_id: int = 94
    workdir: Path | None = None  # default: a temporary folder, removed at the end
    chain_length: int = 5  # kills per session_dir: STATES, then random ones
    settle_timeout: float = 60.0
    params: dict[str, Any] = field(default_factory=lambda: dict(KILL_PARAMS))


@dataclass
class KillReport:
    per_state: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    sent: int = 0

    def add(self, state: str, accepted: int, lost: int, dup: int, confirmed: bool) -> None:
        row = self.per_state.setdefault(
            state, {'kills': 0, 'confirmed': 0, 'accepted': 0, 'lost': 0, 'duplicated': 0}
        )
        row['kills'] += 1
        row['confirmed'] += int(confirmed)
        row['accepted'] += accepted
        row['lost'] += lost
        row['duplicated'] += dup

    def totals(self) -> dict[str, int]:
        keys = ('kills', 'confirmed', 'accepted', 'lost', 'duplicated')
        return {k: sum(r[k] for r in self.per_state.values()) for k in keys}

    def table(self) -> str:
        keys = ('kills', 'confirmed', 'accepted', 'lost', 'duplicated')
        lines = ['| state | ' + ' | '.join(keys) + ' |', '|---' * (len(keys) + 1) + '|']
        for state in STATES:
            r = self.per_state.get(state)
            if r:
                lines.append(f'| {state} | ' + ' | '.join(str(r[k]) for k in keys) + ' |')
        t = self.totals()
        lines.append('| all | ' + ' | '.join(str(t[k]) for k in keys) + ' |')
        return '\n'.join(lines)


# ----- the check (independent of the node's own replay code) ------------------------------
def _expected_set(records: list[dict[str, Any]], frame: list[Any] | None) -> list[tuple]:
    """Annotations the log says frame `frame` ([scene, index]) holds, in order."""
    queued = {r['id']: r for r in records if r.get('status') == 'queued'}
    out: list[tuple] = []
    for r in records:
        if r.get('status') != 'applied' or frame is None:
            continue
        f = r.get('frame', {})
        if [f.get('scene'), f.get('index')] != list(frame):
            continue
        cmd = queued[r['id']]
        if cmd['type'] == 'undo':
            if out:
                out.pop()
        elif cmd['type'] == 'clear':
            out.clear()
        else:
            out.append(_ann_key(cmd))
    return out


def _ann_key(d: dict[str, Any]) -> tuple:
    if d['type'] == 'click':
        return ('click', round(float(d['x']), 4), round(float(d['y']), 4), int(d['class_id']))
    return (
        d['type'],
        json.dumps(
            {k: d[k] for k in sorted(d) if k in ('points', 'x0', 'y0', 'x1', 'y1', 'class_id')}
        ),
    )


def check_session(session_dir: Path) -> tuple[int, int, int, list[str]]:
    """(accepted, lost, duplicated, problems) of a settled session_dir (see module doc)."""
    from segdip_ros.core import TrainingSession

    records = read_log(session_dir)
    problems: list[str] = []
    queued: dict[str, int] = {}
    settled: dict[str, int] = {}
    for r in records:
        if r.get('status') == 'queued':
            queued[r['id']] = queued.get(r['id'], 0) + 1
        elif r.get('status') in ('applied', 'refused'):
            settled[r['id']] = settled.get(r['id'], 0) + 1
    lost = sum(1 for i in queued if settled.get(i, 0) == 0)
    dup = sum(n - 1 for n in settled.values() if n > 1)
    dup += sum(n - 1 for n in queued.values() if n > 1)
    stray = [i for i in settled if i not in queued]
    if stray:
        problems.append(f'{len(stray)} settle record(s) without a queued record')
    ckpt, meta_path = session_dir / 'checkpoint.pt', session_dir / 'checkpoint.json'
    if ckpt.exists():
        meta = json.loads(meta_path.read_text())
        if hashlib.sha256(ckpt.read_bytes()).hexdigest() != meta.get('sha256'):
            problems.append('checkpoint.json does not describe checkpoint.pt')
        session = TrainingSession.load(str(ckpt), device='cpu')
        have = [_ann_key(a.to_dict()) for a in session.annotations]
        want = _expected_set(records, meta.get('frame'))
        missing = [a for a in want if have.count(a) < want.count(a)]
        extra = [a for a in have if have.count(a) > want.count(a)]
        if missing:
            problems.append(f'checkpoint lacks {len(missing)} logged annotation(s)')
        if extra:
            problems.append(f'checkpoint holds {len(extra)} annotation(s) too many')
        lost += len(set(missing))
        dup += len(set(extra))
    return len(queued), lost, dup, problems


# ----- driving the node ----------------------------------------------------------------------
class _Run:
    """One chain: a session_dir, the node process (restarted after each kill), a client."""

    def __init__(
        self,
        st: KillSettings,
        session: Path,
        chain: int,
        rng: random.Random,
        log: Callable[[str], None],
    ) -> None:
        from std_msgs.msg import Header

        from segdip_ros.core.synthetic import moving_object_sequence
        from segdip_ros.ros.convert import rgb_to_image_msg

        self.st, self.session, self.chain, self.rng, self.log = st, session, chain, rng, log
        self.frames = [
            rgb_to_image_msg(s.rgb, Header(frame_id='camera'))
            for s in moving_object_sequence(frames=20)
        ]
        self.k = 0
        self.node: NodeProcess | None = None
        self.client: NodeClient | None = None
        self.sent = 0

    def start(self, mode: str) -> None:
        params = {**self.st.params, 'session_dir': str(self.session), 'mode': mode}
        self.node = NodeProcess(
            params, self.st.domain_id, self.session.parent / f'node{self.chain}.log'
        ).start()
        if self.client is None:
            self.client = NodeClient(self.st.domain_id)
        self.client.diag = {}
        if not self.client.spin_until(
            lambda: self.client.matched() and self.client.diag, 60, self.node.alive
        ):
            raise RuntimeError('the node did not come up:\n' + self.node.log_text()[-3000:])

    def frame(self) -> None:
        msg = self.frames[self.k % len(self.frames)]
        msg.header.stamp.sec, msg.header.stamp.nanosec = (
            100 + self.k // 30,
            (self.k % 30) * 33_000_000,
        )
        self.client.image.publish(msg)
        self.k += 1

    def command(self) -> None:
        """A click (sometimes an undo or a clear) on ~/annotations."""
        r = self.rng.random()
        if r < 0.08:
            self.client.send({'type': 'undo'})
        elif r < 0.11:
            self.client.send({'type': 'clear'})
        else:
            self.client.send(
                {
                    'type': 'click',
                    'x': round(self.rng.uniform(0, 159), 3),
                    'y': round(self.rng.uniform(0, 119), 3),
                    'class_id': self.rng.randrange(2),
                }
            )
        self.sent += 1

    def state(self) -> str:
        return self.client.diag.get('state', '')

    def wait_state(
        self, cond: Callable[[str], bool], timeout: float, stream: bool = False
    ) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.node.alive():
            if cond(self.state()):
                return True
            if stream:
                self.frame()
            self.client.spin_for(1 / 30 if stream else 0.05)
        return cond(self.state())

    def clicks_then_kill(self, stream: bool = False, service: str | None = None) -> dict[str, Any]:
        """Send commands at CLICK_RATE, SIGKILL at a random moment 0.3-1.5 s in (a service
        call half-way); what was seen: last diagnostics state, service done or not."""
        kill_at = self.rng.uniform(0.3, 1.5) * (2.0 if stream else 1.0)
        rate = CLICK_RATE / 5 if stream else CLICK_RATE
        call_at = self.rng.uniform(0.1, kill_at) if service else None
        fut = None
        t0 = time.monotonic()
        i = 0
        while (el := time.monotonic() - t0) < kill_at:
            if el >= i / rate:
                self.command()
                i += 1
            if call_at is not None and fut is None and el >= call_at:
                fut = self.client.call_async(service)
            if stream:
                self.frame()
            self.client.executor.spin_once(timeout_sec=1 / 30 if stream else 0.01)
        seen = {'state': self.state(), 'service_done': fut.done() if fut else None}
        self.node.kill()
        self.node.stop()
        return seen

    def settle(self) -> bool:
        """Until the restarted node has nothing pending and is idle (still mode)."""
        c = self.client
        return c.spin_until(
            lambda: c.diag.get('annotations_pending') == '0' and c.diag.get('state') == 'idle',
            self.st.settle_timeout,
            self.node.alive,
        )

    def close(self) -> None:
        try:
            if self.node is not None:
                self.node.stop()
        finally:
            if self.client is not None:
                self.client.close()


def _kill_in(run: _Run, state: str) -> dict[str, Any]:
    """Bring the (running) node into `state`, then kill it there; what was seen."""
    if state == 'waiting':
        return run.clicks_then_kill()
    if state == 'warm-up':
        if run.client.diag.get('state') == 'waiting for image':
            # the first frame starts a scene with its warm-up (repeated: best effort QoS)
            run.wait_state(lambda s: s not in ('', 'waiting for image'), 30, stream=True)
        else:
            run.wait_state(lambda s: s in ('idle', 'training'), 60)
            run.client.call('reset')  # a fresh model: warm-up again
        return run.clicks_then_kill()
    if state == 'training':
        run.wait_state(lambda s: s in ('idle', 'training'), 60)
        return run.clicks_then_kill()
    if state == 'switching':
        run.wait_state(lambda s: s in ('idle', 'training'), 60)
        run.client.set_parameter('mode', 'tracking')
        return run.clicks_then_kill(stream=True)
    if state == 'saving':
        run.wait_state(lambda s: s in ('idle', 'training'), 60)
        return run.clicks_then_kill(service='save')
    raise ValueError(f'unknown state {state!r}')


def run_kills(st: KillSettings, log: Callable[[str], None] = print) -> KillReport:
    """Chains of kills (STATES in order, fresh session_dir each) until st.kills are done."""
    rng = random.Random(st.seed)
    report = KillReport()
    own = st.workdir is None
    work = Path(tempfile.mkdtemp(prefix='segdip_killtest_')) if own else st.workdir
    try:
        chain = 0
        while report.totals()['kills'] < st.kills:
            session = work / f'chain{chain}' / 'session'
            session.mkdir(parents=True)
            run = _Run(st, session, chain, rng, log)
            try:
                _chain(run, report, st.kills, log)
            finally:
                report.sent += run.sent
                run.close()
            chain += 1
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return report


def _chain(run: _Run, report: KillReport, kills: int, log: Callable[[str], None]) -> None:
    """One kill in each state on one session_dir, each checked after the restart."""
    prev = (0, 0, 0)  # accepted, lost, duplicated so far in this session_dir
    run.start('still')
    states = list(STATES) + [
        run.rng.choice(STATES[1:]) for _ in range(run.st.chain_length - len(STATES))
    ]
    for state in states[: run.st.chain_length]:
        if report.totals()['kills'] >= kills:
            return
        before = read_log(run.session)
        seen = _kill_in(run, state)
        confirmed = _confirm(state, before, read_log(run.session), seen)
        run.start('still')
        if state == 'waiting':  # no image: the restarted node must hold them all again
            accepted = sum(1 for r in read_log(run.session) if r.get('status') == 'queued')
            c = run.client
            c.spin_until(lambda: c.diag.get('annotations_pending') == str(accepted), 15)
            pending = int(c.diag.get('annotations_pending', -1))
            lost, dup, problems = max(0, accepted - pending), max(0, pending - accepted), []
        else:
            settled = run.settle()
            accepted, lost, dup, problems = check_session(run.session)
            if not settled:
                problems.append('the restarted node did not settle')
        problems += _dataset_problems(run.session)
        report.add(
            state, accepted - prev[0], max(0, lost - prev[1]), max(0, dup - prev[2]), confirmed
        )
        prev = (accepted, max(lost, prev[1]), max(dup, prev[2]))
        report.problems += [f'chain {run.chain}, {state}: {p}' for p in problems]
        log(
            f'chain {run.chain}: killed in {state} ({"confirmed" if confirmed else "unsure"}'
            f', last /diagnostics state {seen["state"] or "?"}), '
            f'{accepted} accepted in all, lost {lost}, duplicated {dup}'
            + (f'; {"; ".join(problems)}' if problems else '')
        )


def _confirm(
    state: str, before: list[dict[str, Any]], after: list[dict[str, Any]], seen: dict[str, Any]
) -> bool:
    """Whether the log written up to the kill shows the node was in `state` when it died.

    waiting: no scene yet. warm-up: commands accepted in the round, none applied (they wait
    behind the warm-up). training: commands applied in the round (each adds iterations).
    switching: applied records of the round on two or more frames. saving: the
    ~/save call was made and had not been answered.
    """
    new = after[len(before) :]
    applied = [r for r in new if r.get('status') == 'applied']
    if state == 'waiting':
        return not any(r.get('status') == 'scene' for r in after)
    if state == 'warm-up':
        return any(r.get('status') == 'queued' for r in new) and not applied
    if state == 'training':
        return bool(applied)
    if state == 'switching':
        frames = {(r['frame']['scene'], r['frame']['index']) for r in applied}
        return len(frames) >= 2
    if state == 'saving':
        return seen.get('service_done') is False
    return False


def _dataset_problems(session: Path) -> list[str]:
    """~/save files that are there but unreadable (a torn write)."""
    import cv2

    bad = (
        [
            p.name
            for p in (session / 'dataset').glob('*.png')
            if cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is None
        ]
        if (session / 'dataset').exists()
        else []
    )
    return [f'unreadable sample file(s) {bad}'] if bad else []


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument('--kills', type=int, default=50, help='SIGKILLs in all (default 50)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--domain-id', type=int, default=94, help='ROS domain (default 94)')
    p.add_argument(
        '--chain-length',
        type=int,
        default=10,
        help='kills per session folder: the 5 states, then random ones (10)',
    )
    p.add_argument(
        '--workdir',
        type=Path,
        default=None,
        help='keep the session folders here (default: temporary, removed)',
    )


def run_cli(args: argparse.Namespace) -> int:
    st = KillSettings(
        kills=args.kills,
        seed=args.seed,
        domain_id=args.domain_id,
        workdir=args.workdir,
        chain_length=args.chain_length,
    )
    t0 = time.monotonic()
    report = run_kills(st)
    print(report.table())
    print(f'{report.sent} commands sent, {time.monotonic() - t0:.0f} s')
    for p in report.problems:
        print('problem:', p)
    t = report.totals()
    return 0 if t['lost'] == 0 and t['duplicated'] == 0 and not report.problems else 1
