# SPDX-License-Identifier: Apache-2.0
"""The node as a lifecycle (managed) node, driven through its lifecycle services as a
lifecycle manager would, and ~/enable pausing it without a transition."""

from __future__ import annotations

import gc
import json
import weakref

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from node_harness import TINY, Harness, header, mask_of
from sensor_msgs.msg import Image
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from segdip_ros.core.synthetic import two_class_scene


def _change(h: Harness, transition: int) -> bool:
    req = ChangeState.Request(transition=Transition(id=transition))
    return h.call(ChangeState, '/segdip/change_state', req).success


def _state(h: Harness) -> str:
    return h.call(GetState, '/segdip/get_state').current_state.label


def _click(x: float, y: float, class_id: int) -> String:
    return String(data=json.dumps({'type': 'click', 'x': x, 'y': y, 'class_id': class_id}))


def test_transitions_free_the_model_and_activate_resumes_from_the_checkpoint(tmp_path):
    scene = two_class_scene()
    h = Harness(30, {**TINY, 'mode': 'still', 'autostart': False, 'session_dir': str(tmp_path)})
    try:
        node = h.node
        assert _state(h) == 'unconfigured' and node.trainer is None
        assert h.tester.count_publishers('/segdip/mask') == 0

        assert _change(h, Transition.TRANSITION_CONFIGURE)
        assert _state(h) == 'inactive' and node.trainer is not None and not node.trainer.running
        img = h.pub(Image, 'image', 5)
        ann = h.pub(String, '/segdip/annotations', 100)
        assert h.wait_matched(img) and h.wait_matched(ann)
        ann.publish(_click(88, 60, 1))
        assert h.spin_until(lambda: node.inputs_rejected == 1, 10), 'inactive node took a click'
        r = h.call(Trigger, '/segdip/reset')
        assert not r.success and 'inactive' in r.message, r.message

        assert _change(h, Transition.TRANSITION_ACTIVATE)
        assert _state(h) == 'active' and node.trainer.running
        h.send_image(scene.rgb, header(5))
        assert h.spin_until(lambda: node.trainer.current is not None, 30)
        ann.publish(_click(88, 60, 1))
        assert h.spin_until(lambda: node.trainer.stats.annotations_accepted == 1, 30)
        assert h.wait_idle(60)
        session = node.trainer.session
        annotations, iteration = list(session.annotations), session.iteration
        model = weakref.ref(session)
        del session

        assert _change(h, Transition.TRANSITION_DEACTIVATE)
        assert _state(h) == 'inactive'
        assert node.trainer.session is None and not node.trainer.running
        gc.collect()
        assert model() is None, 'deactivate kept the session (and its model) alive'
        assert (tmp_path / 'checkpoint.pt').is_file()

        assert _change(h, Transition.TRANSITION_ACTIVATE)
        restored = node.trainer.session
        assert restored is not None and list(restored.annotations) == annotations
        assert restored.iteration == iteration
        assert node.trainer.current.stamp_ns == 5_000_000_000
        masks = h.sub(Image, '/segdip/mask')
        assert h.spin_until(lambda: masks and 1 in mask_of(masks[-1]), 30), (
            'the restored model publishes no mask with the clicked class'
        )
        ann.publish(_click(20, 20, 0))
        assert h.spin_until(lambda: node.trainer.stats.annotations_accepted == 2, 30)
        # training goes on from the restored iteration (a fresh model would restart at 0)
        assert h.spin_until(lambda: node.trainer.session.iteration > iteration, 30)
        assert node.trainer.stats.scenes == 1, 'activate started a new scene'

        assert _change(h, Transition.TRANSITION_DEACTIVATE)
        assert _change(h, Transition.TRANSITION_CLEANUP)
        assert _state(h) == 'unconfigured' and node.trainer is None
        assert h.spin_until(lambda: h.tester.count_publishers('/segdip/mask') == 0, 10)
        assert _change(h, Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert _state(h) == 'finalized'
    finally:
        h.close()


def test_shutdown_from_active_saves_and_autostart_comes_up_active(tmp_path):
    h = Harness(31, {**TINY, 'mode': 'still', 'session_dir': str(tmp_path)})
    try:
        node = h.node
        assert _state(h) == 'active' and node.trainer.running  # autostart (default)
        h.send_image(two_class_scene().rgb, header(3))
        assert h.spin_until(lambda: node.trainer.current is not None, 30)
        assert _change(h, Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert _state(h) == 'finalized' and node.trainer is None
        assert (tmp_path / 'checkpoint.pt').is_file()
    finally:
        h.close()


def test_enable_false_stops_iterations_and_outputs_until_enabled_again():
    overrides = [*TINY['engine_overrides'], 'iterations_first=1000000']  # trains on and on
    h = Harness(32, {**TINY, 'mode': 'still', 'engine_overrides': overrides})
    try:
        node = h.node
        stats = node.trainer.stats
        masks = h.sub(Image, '/segdip/mask')
        assert h.wait_matched(h.pub(Image, 'image', 5))
        h.send_image(two_class_scene().rgb, header(1))
        assert h.spin_until(lambda: stats.iteration > 20 and masks, 60)

        r = h.call(SetBool, '/segdip/enable', SetBool.Request(data=False))
        assert r.success and 'paused' in r.message
        assert h.spin_until(lambda: stats.state == 'paused', 10)
        h.spin_for(0.3)  # outputs already on the wire
        paused_at, published = stats.iteration, len(masks)
        h.spin_for(1.5)
        assert stats.iteration == paused_at, 'iterations advanced while disabled'
        assert len(masks) == published, 'outputs published while disabled'

        r = h.call(SetBool, '/segdip/enable', SetBool.Request(data=True))
        assert r.success
        assert h.spin_until(lambda: stats.iteration > paused_at + 5, 30)
        assert h.spin_until(lambda: len(masks) > published, 10)
    finally:
        h.close()
