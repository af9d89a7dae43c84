# SPDX-License-Identifier: Apache-2.0
"""The labelling console in a real headless browser (Debian chromium driven by Playwright)
against a live segdip node on a generated scene: gestures become annotations of the right
class at the right pixels, two pages stay in sync, each annotation is applied once, bad
messages are refused in the page, and the saved dataset exports to COCO that pycocotools
reads back to the saved masks."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from node_harness import TINY, header, mask_of
from web_harness import CHROMIUM_ARGS, LiveConsole, chromium_path, wait_for

from segdip_ros.core import Box, Click, Stroke
from segdip_ros.core.synthetic import interior_point, three_class_scene
from segdip_ros.offline.dataset import load_dataset
from segdip_ros.tools.export import run as export_run

sync_api = pytest.importorskip('playwright.sync_api', reason='playwright is not installed')
coco_api = pytest.importorskip('pycocotools.coco', reason='pycocotools is not installed')

ROOT = Path(__file__).resolve().parents[2]
NAMES = ['background', 'blob', 'box']
H, W = 120, 160
T = 30_000  # ms, Playwright waits (generous: 2 shared cores)


def _screen(page, x: float, y: float) -> tuple[float, float]:
    """Image pixel (x = column, y = row) -> page coordinates of that pixel's centre."""
    box = page.locator('#canvas').bounding_box()
    return box['x'] + (x + 0.5) / W * box['width'], box['y'] + (y + 0.5) / H * box['height']


def _drag(page, a: tuple[float, float], b: tuple[float, float], shift: bool = False) -> None:
    page.mouse.move(*_screen(page, *a))
    if shift:
        page.keyboard.down('Shift')
    page.mouse.down()
    page.mouse.move(*_screen(page, *b), steps=12)
    page.mouse.up()
    if shift:
        page.keyboard.up('Shift')


def test_labelling_console_end_to_end(tmp_path):
    exe = chromium_path()
    if exe is None:
        pytest.skip(
            'Debian chromium not found at /usr/bin/chromium '
            '(scripts/install_browser.sh installs it with apt-get)'
        )
    expect = sync_api.expect
    scene = three_class_scene()
    shot = os.environ.get('SEGDIP_WRITE_SCREENSHOT') == '1'  # docs/web_console.png
    params = {
        **TINY,
        'mode': 'still',
        'num_classes': 3,
        'class_names': NAMES,
        'session_dir': str(tmp_path / 'session'),
    }
    if shot:  # a picture worth showing: the engine's default preset instead of a tiny one
        params['working_size'] = 0
        del params['engine_overrides']
    live = LiveConsole(63, params)
    browser = None
    pw = sync_api.sync_playwright().start()
    try:
        node, server = live.node, live.console.server
        live.send_image(scene.rgb, header(7, 0, 'cam'))
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={'width': 1100, 'height': 720})
        p1, p2 = context.new_page(), context.new_page()
        for p in (p1, p2):
            p.goto(live.url)
            expect(p.locator('#palette .class')).to_have_count(3, timeout=T)
            expect(p.locator('#canvas')).to_have_attribute(
                'data-frames', re.compile('[1-9]'), timeout=T
            )
        assert p1.locator('#palette .class').all_inner_texts() == [
            '0 background',
            '1 blob',
            '2 box',
        ]
        expect(p1.locator('#palette .class.active')).to_have_text('1 blob')

        def anns():
            return tuple(node.trainer.session.annotations)

        # left click: the active class at the clicked pixel; both pages follow
        frames2 = int(p2.locator('#canvas').get_attribute('data-frames'))
        bx, by = interior_point(scene.labels == 1)
        p1.mouse.click(*_screen(p1, bx, by))
        assert wait_for(lambda: len(anns()) == 1, 30), anns()
        a = anns()[0]
        assert isinstance(a, Click) and a.class_id == 1
        assert abs(a.x - bx) <= 1.0 and abs(a.y - by) <= 1.0, (a, bx, by)
        assert wait_for(lambda: live.masks and mask_of(live.masks[-1])[by, bx] == 1, 30)
        for p in (p1, p2):
            expect(p.locator('#status-annotations')).to_have_text('1', timeout=T)
        expect(p2.locator('#log')).to_contain_text('click of class 1', timeout=T)
        # the other page shows the new labels once their frame has reached it
        assert wait_for(
            lambda: int(p2.locator('#canvas').get_attribute('data-frames')) > frames2, 30
        )
        assert live.stats.annotations_accepted == 1 and server.published == 1

        # key 2 + shift-drag: a box of class 2
        p1.keyboard.press('2')
        expect(p1.locator('#palette .class.active')).to_have_text('2 box')
        _drag(p1, (100, 40), (130, 85), shift=True)
        assert wait_for(lambda: len(anns()) == 2, 30), anns()
        b = anns()[1]
        assert isinstance(b, Box) and b.class_id == 2, b
        assert np.allclose([b.x0, b.y0, b.x1, b.y1], [100, 40, 130, 85], atol=1.0), b

        # right click in the other page: class 0
        p2.mouse.click(*_screen(p2, 10, 10), button='right')
        assert wait_for(lambda: len(anns()) == 3, 30), anns()
        c = anns()[2]
        assert isinstance(c, Click) and c.class_id == 0 and abs(c.x - 10) <= 1, c

        # a malformed message is refused in the page; the node keeps working
        p2.evaluate(
            't => window.segdipConsole.sendRaw(t)',
            '{"id":"bad-1","op":"annotate","annotation":{"type":"click",'
            '"x":1e400,"y":3,"class_id":1}}',
        )
        expect(p2.locator('#message')).to_contain_text('refused', timeout=T)
        expect(p2.locator('#message')).to_contain_text('finite')
        p2.evaluate('t => window.segdipConsole.sendRaw(t)', '{"id": "bad-2", "op": [')
        expect(p2.locator('#message')).to_contain_text('not JSON', timeout=T)
        assert p2.locator('#message').is_visible()
        assert server.refused == 2 and server.published == 3

        # drag: a stroke of the active class (1 in this page) with the stroke width
        _drag(p2, (bx - 8, by - 3), (bx + 6, by + 4))
        assert wait_for(lambda: len(anns()) == 4, 30), anns()
        s = anns()[3]
        assert isinstance(s, Stroke) and s.class_id == 1 and len(s.points) >= 2
        assert s.width == 3.0 and abs(s.points[0][0] - (bx - 8)) <= 1.0

        # z: undo the stroke (the ~/undo service); the answer shows in both pages
        p1.keyboard.press('z')
        for p in (p1, p2):
            expect(p.locator('#log')).to_contain_text('undo: 1 annotation(s) removed', timeout=T)
        assert len(anns()) == 3 and live.stats.annotations_accepted == 4
        for p in (p1, p2):
            expect(p.locator('#status-annotations')).to_have_text('3', timeout=T)

        # views: confidence, and the camera image (the node's input topic)
        p2.locator('#views input[value=confidence]').check()
        expect(p2.locator('#canvas')).to_have_attribute('data-view', 'confidence', timeout=T)
        p2.locator('#views input[value=image]').check()
        assert wait_for(lambda: 'image' in live.console.bridge.subscribed_views, 10)

        def image_shown():
            live.send_image(scene.rgb, header(7, 0, 'cam'))
            return p2.locator('#canvas').get_attribute('data-view') == 'image'

        assert wait_for(image_shown, 30, period=0.3)
        assert 'confidence' not in live.console.bridge.subscribed_views

        # save (button in page 2): a dataset that loads back and exports to COCO
        p2.locator('#actions [data-service=save]').click()
        for p in (p1, p2):
            expect(p.locator('#log')).to_contain_text('save: saved', timeout=T)
        ds = load_dataset(tmp_path / 'session' / 'dataset')
        assert ds.class_names == NAMES and len(ds.samples) == 1
        sample = ds.samples[0]
        assert sample.stamp_ns == 7_000_000_000 and sample.frame_id == 'cam'
        assert [x['type'] for x in sample.annotations] == ['click', 'box', 'click']
        assert np.array_equal(sample.read_image(), scene.rgb)  # PNG: lossless
        mask = sample.read_mask()
        assert mask.shape == (H, W) and set(np.unique(mask)) <= {0, 1, 2, 255}
        assert mask[by, bx] == 1
        out = tmp_path / 'coco.json'
        assert export_run([str(ds.root), '-o', str(out)]) == 0
        coco = coco_api.COCO(str(out))
        assert sorted(coco.getCatIds()) == [1, 2]
        img_id = coco.getImgIds()[0]
        assert coco.loadImgs(img_id)[0]['file_name'] == f'images/{sample.name}.png'
        for cid in (1, 2):
            union = np.zeros((H, W), bool)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img_id], catIds=[cid])):
                union |= coco.annToMask(ann).astype(bool)
            assert np.array_equal(union, mask == cid), cid
        assert live.stats.last_error == ''

        if shot:  # a few more background clicks, as an operator would give, then the picture
            import cv2

            far = cv2.distanceTransform((scene.labels == 0).astype(np.uint8), cv2.DIST_L2, 5)
            for x, y in (
                (150, 8),
                (75, 110),
                (150, 112),
                (80, 8),
                (8, 112),
                (70, 62),
                (150, 55),
                (118, 14),
            ):
                if far[y, x] > 4:
                    p1.mouse.click(*_screen(p1, x, y), button='right')
                    time.sleep(0.3)
            wait_for(lambda: live.stats.state == 'idle', 90)
            time.sleep(1.5)
            p1.screenshot(path=str(ROOT / 'docs' / 'web_console.png'))
    finally:
        try:
            if browser is not None:
                browser.close()
        finally:
            pw.stop()
            live.close()
