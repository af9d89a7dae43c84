// segdip labelling console: shows the node's frames, turns pointer gestures into
// ~/annotations messages (original image pixels, x = column, y = row) and calls services.
// Plain script, no build step, no network access beyond this page's own server.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const canvas = $('canvas');
  const ctx = canvas.getContext('2d');
  const DRAG_PX = 5;            // screen pixels before a press becomes a drag
  const state = {
    ws: null, classes: [], active: 1, view: 'overlay', width: 3, maxPoints: 2000,
    frame: null, frames: 0, gesture: null, counter: 0, unacked: new Map(),
    prefix: Array.from(crypto.getRandomValues(new Uint8Array(6)),
      (b) => b.toString(16).padStart(2, '0')).join(''),
  };
  window.segdipConsole = state;   // for debugging and tests

  // ----- messages to the server ---------------------------------------------------------
  function send(op, fields) {
    state.counter += 1;
    const msg = Object.assign({ id: `${state.prefix}-${state.counter}`, op: op }, fields);
    if (op !== 'view') state.unacked.set(msg.id, msg);
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
    return msg.id;
  }

  function stampOfShownFrame() {
    return state.frame ? state.frame.meta.stamp : undefined;
  }

  function annotate(annotation, stamp) {
    if (stamp && (stamp.sec > 0 || stamp.nanosec > 0)) annotation.stamp = stamp;
    send('annotate', { annotation: annotation });
  }

  function service(name) {
    send('service', { name: name });
    showMessage(`${name}: asked the node`, 'info');
  }

  // ----- page text ----------------------------------------------------------------------
  function showMessage(text, kind) {
    const box = $('message');
    box.textContent = text;
    box.className = kind;
    const li = document.createElement('li');
    li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
    li.className = kind;
    const log = $('log');
    log.insertBefore(li, log.firstChild);
    while (log.children.length > 50) log.removeChild(log.lastChild);
  }

  function setStatus(msg) {
    const v = msg.values || {};
    for (const key of ['state', 'iterations_per_second', 'frame_index', 'annotations',
      'device']) {
      if (v[key] !== undefined) $(`status-${key}`).textContent = v[key];
    }
    $('status').classList.toggle('warn', msg.level > 0);
  }

  function setPalette(info) {
    state.classes = info.classes;
    const pal = $('palette');
    pal.textContent = '';
    for (const c of info.classes) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'class';
      b.dataset.id = String(c.id);
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = c.color_hex;
      const label = document.createElement('span');
      label.textContent = `${c.id < 10 ? c.id : ''} ${c.name}`;
      b.append(sw, label);
      b.addEventListener('click', () => selectClass(c.id));
      pal.append(b);
    }
    if (state.active >= info.classes.length) state.active = info.classes.length > 1 ? 1 : 0;
    selectClass(state.active);
  }

  function selectClass(id) {
    if (id < 0 || id >= state.classes.length) return;
    state.active = id;
    for (const b of document.querySelectorAll('#palette .class')) {
      b.classList.toggle('active', Number(b.dataset.id) === id);
    }
  }

  function colorOf(id) {
    const c = state.classes[id];
    return c ? c.color_hex : '#ffffff';
  }

  // ----- frames ------------------------------------------------------------------------
  function onFrame(buf) {
    const view = new DataView(buf);
    const n = view.getUint32(0);
    const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
    if (meta.view !== state.view) return;
    const blob = new Blob([new Uint8Array(buf, 4 + n)], { type: 'image/jpeg' });
    createImageBitmap(blob).then((bmp) => {
      if (state.frame && state.frame.bmp) state.frame.bmp.close();
      state.frame = { meta: meta, bmp: bmp };
      state.frames += 1;
      canvas.dataset.frames = String(state.frames);
      canvas.dataset.view = meta.view;
      canvas.dataset.width = String(meta.width);
      canvas.dataset.height = String(meta.height);
      $('waiting').hidden = true;
      fit();
      draw();
    }).catch((err) => showMessage(`cannot show a frame: ${err}`, 'error'));
  }

  function fit() {
    if (!state.frame) return;
    const { width, height } = state.frame.meta;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const stage = $('stage');
    const s = Math.min(stage.clientWidth / width, stage.clientHeight / height);
    canvas.style.width = `${Math.max(1, Math.floor(width * s))}px`;
    canvas.style.height = `${Math.max(1, Math.floor(height * s))}px`;
  }

  function draw() {
    if (!state.frame) return;
    ctx.drawImage(state.frame.bmp, 0, 0);
    const g = state.gesture;
    if (!g || g.mode === 'pending') return;
    ctx.save();
    ctx.strokeStyle = colorOf(g.cls);
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    if (g.mode === 'stroke') {
      ctx.lineWidth = state.width;
      ctx.beginPath();
      g.points.forEach(([x, y], i) => (i ? ctx.lineTo(x + 0.5, y + 0.5)
        : ctx.moveTo(x + 0.5, y + 0.5)));
      ctx.stroke();
    } else {
      ctx.lineWidth = 1;
      const [x0, y0, x1, y1] = boxOf(g);
      ctx.strokeRect(x0 + 0.5, y0 + 0.5, x1 - x0, y1 - y0);
    }
    ctx.restore();
  }

  // ----- pointer gestures ---------------------------------------------------------------
  // Canvas (CSS pixels) -> original image pixels; (0, 0) is the centre of the top-left pixel.
  function toImage(e) {
    const r = canvas.getBoundingClientRect();
    const { width, height } = state.frame.meta;
    const x = (e.clientX - r.left) / r.width * width - 0.5;
    const y = (e.clientY - r.top) / r.height * height - 0.5;
    const round = (v) => Math.round(v * 100) / 100;
    const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
    return [round(clamp(x, width - 1)), round(clamp(y, height - 1))];
  }

  function boxOf(g) {
    const [ax, ay] = g.points[0];
    const [bx, by] = g.points[g.points.length - 1];
    return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
  }

  canvas.addEventListener('contextmenu', (e) => e.preventDefault());

  canvas.addEventListener('pointerdown', (e) => {
    if (!state.frame || state.classes.length === 0 || (e.button !== 0 && e.button !== 2)) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    state.gesture = {
      id: e.pointerId, cls: e.button === 2 ? 0 : state.active,
      mode: e.shiftKey ? 'box' : 'pending', sx: e.clientX, sy: e.clientY,
      points: [toImage(e)], stamp: stampOfShownFrame(),
    };
  });

  canvas.addEventListener('pointermove', (e) => {
    const g = state.gesture;
    if (!g || g.id !== e.pointerId) return;
    if (g.mode === 'pending' && Math.hypot(e.clientX - g.sx, e.clientY - g.sy) >= DRAG_PX) {
      g.mode = 'stroke';
    }
    const p = toImage(e);
    if (g.mode === 'stroke') {
      const last = g.points[g.points.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 1) g.points.push(p);
    } else if (g.mode === 'box') {
      g.points = [g.points[0], p];
    }
    draw();
  });

  function finish(e) {
    const g = state.gesture;
    if (!g || g.id !== e.pointerId) return;
    state.gesture = null;
    if (g.mode === 'pending') {
      const [x, y] = g.points[0];
      annotate({ type: 'click', x: x, y: y, class_id: g.cls }, g.stamp);
    } else if (g.mode === 'stroke') {
      let pts = g.points;
      if (pts.length < 2) pts = [pts[0], toImage(e)];
      if (pts.length > state.maxPoints) {
        const step = Math.ceil(pts.length / state.maxPoints);
        pts = pts.filter((_, i) => i % step === 0 || i === pts.length - 1);
      }
      annotate({ type: 'stroke', points: pts, class_id: g.cls, width: state.width }, g.stamp);
    } else {
      if (g.points.length < 2) g.points.push(toImage(e));
      const [x0, y0, x1, y1] = boxOf(g);
      annotate({ type: 'box', x0: x0, y0: y0, x1: x1, y1: y1, class_id: g.cls }, g.stamp);
    }
    draw();
  }
  canvas.addEventListener('pointerup', finish);
  canvas.addEventListener('pointercancel', () => { state.gesture = null; draw(); });

  // ----- controls ------------------------------------------------------------------------
  for (const b of document.querySelectorAll('#actions [data-service]')) {
    b.addEventListener('click', () => service(b.dataset.service));
  }
  for (const r of document.querySelectorAll('#views input[name=view]')) {
    r.addEventListener('change', () => {
      state.view = r.value;
      send('view', { view: r.value });
    });
  }
  $('width').addEventListener('input', (e) => {
    state.width = Number(e.target.value);
    $('width-value').textContent = String(state.width);
  });
  document.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== 'radio') return;
    if (e.altKey || e.metaKey) return;
    if (e.ctrlKey && e.key !== 'z') return;
    if (/^[0-9]$/.test(e.key)) selectClass(Number(e.key));
    else if (e.key === 'z') service('undo');
    else if (e.key === 'n') service('next_frame');
    else if (e.key === 's') service('save');
    else return;
    e.preventDefault();
  });
  // refit when the page layout changes, not only when a frame arrives
  new ResizeObserver(() => { fit(); draw(); }).observe($('stage'));

  // ----- websocket -------------------------------------------------------------------------
  function onText(msg) {
    switch (msg.type) {
      case 'hello':
        $('node').textContent = msg.node;
        if (msg.limits) state.maxPoints = msg.limits.max_points;
        document.body.dataset.client = String(msg.client);
        break;
      case 'label_info': setPalette(msg); break;
      case 'status': setStatus(msg); break;
      case 'clients': $('clients').textContent = String(msg.count); break;
      case 'ack': state.unacked.delete(msg.id); break;
      case 'error':
        if (msg.id) state.unacked.delete(msg.id);
        showMessage(msg.message, 'error');
        break;
      case 'service':
        showMessage(msg.message.startsWith(`${msg.name}:`) && msg.ok ? msg.message
          : `${msg.name}${msg.ok ? '' : ' failed'}: ${msg.message}`, msg.ok ? 'ok' : 'error');
        break;
      case 'event': showMessage(msg.text, 'info'); break;
      default: break;
    }
  }

  function connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws${location.search}`);
    ws.binaryType = 'arraybuffer';
    state.ws = ws;
    ws.addEventListener('open', () => {
      $('conn').textContent = 'connected';
      $('conn').className = 'good';
      document.body.dataset.connected = '1';
      if (state.view !== 'overlay') {
        ws.send(JSON.stringify({ id: `${state.prefix}-v`, op: 'view', view: state.view }));
      }
      // messages the old connection may have lost; the server drops the ones it had
      for (const msg of state.unacked.values()) ws.send(JSON.stringify(msg));
    });
    ws.addEventListener('message', (e) => {
      if (typeof e.data === 'string') onText(JSON.parse(e.data));
      else onFrame(e.data);
    });
    ws.addEventListener('close', () => {
      $('conn').textContent = 'disconnected, retrying';
      $('conn').className = 'bad';
      document.body.dataset.connected = '0';
      setTimeout(connect, 1000);
    });
  }

  // for tests and scripted use: send a raw text message as a browser would
  state.sendRaw = (text) => state.ws.send(text);
  connect();
}());
