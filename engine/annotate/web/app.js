// SAM annotate: the page of the assisted-manual annotation tool. Plain JavaScript, no build step.
// Masks travel as COCO compressed RLE at the image's own resolution; all coordinates below are
// pixels of the original image (x right, y down) unless named "display".
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const img = $('image');
  const annLayer = $('ann-layer');
  const curLayer = $('cur-layer');
  const rubber = $('rubber');
  const SLOW_SECONDS = 30;  // the SAM paper's annotators moved on after 30 s on one mask
  const PALETTE = [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
    [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0]];

  // ---- COCO RLE (cocoapi maskApi.c conventions: column-major runs, first run counts zeros) ----

  // Compressed counts string -> array of run lengths (rleFrString).
  function rleCountsFromString(s) {
    const counts = [];
    let p = 0;
    while (p < s.length) {
      let x = 0, k = 0, more = true, c = 0;
      while (more) {
        if (p >= s.length) throw new Error('truncated RLE string');
        c = s.charCodeAt(p) - 48;
        x += (c & 0x1f) * Math.pow(32, k);
        more = (c & 0x20) !== 0;
        p++; k++;
        if (!more && (c & 0x10)) x -= Math.pow(32, k);
      }
      if (counts.length > 2) x += counts[counts.length - 2];
      counts.push(x);
    }
    return counts;
  }

  // Array of run lengths -> compressed counts string (rleToString).
  function rleCountsToString(counts) {
    let s = '';
    for (let i = 0; i < counts.length; i++) {
      let x = counts[i];
      if (i > 2) x -= counts[i - 2];
      let more = true;
      while (more) {
        let c = ((x % 32) + 32) % 32;  // x & 0x1f for negative x too
        x = Math.floor(x / 32);       // arithmetic shift
        more = (c & 0x10) ? x !== -1 : x !== 0;
        if (more) c |= 0x20;
        s += String.fromCharCode(c + 48);
      }
    }
    return s;
  }

  // {size:[h,w], counts} -> row-major Uint8Array h*w of 0/1.
  function rleDecode(seg) {
    const [h, w] = seg.size;
    const counts = typeof seg.counts === 'string' ? rleCountsFromString(seg.counts) : seg.counts;
    const out = new Uint8Array(h * w);
    let x = 0, y = 0;
    for (let j = 0; j < counts.length; j++) {
      let n = counts[j];
      if (j % 2 === 0) {  // zeros: skip
        y += n;
        x += Math.floor(y / h);
        y %= h;
        continue;
      }
      while (n > 0) {
        const take = Math.min(n, h - y);
        for (let k = 0; k < take; k++) out[(y + k) * w + x] = 1;
        n -= take;
        y += take;
        if (y === h) { y = 0; x++; }
      }
    }
    return out;
  }

  // Row-major mask -> {size:[h,w], counts:string}.
  function rleEncode(mask, h, w) {
    const counts = [];
    let prev = 0, run = 0;
    for (let x = 0; x < w; x++) {
      for (let y = 0; y < h; y++) {
        const v = mask[y * w + x];
        if (v !== prev) { counts.push(run); run = 0; prev = v; }
        run++;
      }
    }
    counts.push(run);
    return { size: [h, w], counts: rleCountsToString(counts) };
  }

  // ---- state ----
  const app = {
    info: null, images: [], image: null, W: 0, H: 0,
    annotations: [], selectedAnn: null, showAccepted: true,
    tool: 'points', brush: 12,
    history: [], hpos: -1,                    // undo stack of prompt/edit states
    predictions: new Map(),                   // prompt key -> {candidates, best, masks[]}
    inflight: false, wantKey: null,
    maskStart: null, lastLatency: null, loadSeq: 0,
  };
  const emptyState = () => ({ points: [], box: null, candidate: null, strokes: [] });
  const cur = () => app.history[app.hpos];
  const clone = (s) => JSON.parse(JSON.stringify(s));
  const promptKey = (s) => JSON.stringify([s.points, s.box]);
  const hasPrompt = (s) => s.points.length > 0 || s.box !== null;

  function resetMask() {
    app.history = [emptyState()];
    app.hpos = 0;
    app.maskStart = null;
    render();
  }

  function push(state) {
    if (app.maskStart === null) app.maskStart = performance.now();
    app.history = app.history.slice(0, app.hpos + 1);
    app.history.push(state);
    app.hpos = app.history.length - 1;
    update();
  }

  // ---- server ----
  async function api(path, opts = {}) {
    const r = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts));
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) throw new Error((body && body.error) || ('HTTP ' + r.status));
    return body;
  }
  const postJson = (path, obj) => api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(obj) });

  function say(text, isError) {
    const m = $('message');
    m.textContent = text || '';
    m.className = isError ? 'error' : '';
  }

  // Asks for masks of the current prompt; one request at a time, always for the newest prompt.
  async function requestPrediction() {
    const s = cur();
    const key = promptKey(s);
    if (!hasPrompt(s) || app.predictions.has(key)) return;
    app.wantKey = key;
    if (app.inflight) return;
    app.inflight = true;
    const image = app.image.name, seq = app.loadSeq;
    try {
      while (app.wantKey !== null && seq === app.loadSeq) {
        const st = cur();
        const k = promptKey(st);
        app.wantKey = null;
        if (!hasPrompt(st) || app.predictions.has(k)) { render(); continue; }
        const t0 = performance.now();
        $('latency').className = 'pill busy';
        const r = await postJson('/api/predict', { image, points: st.points, box: st.box });
        if (seq !== app.loadSeq) return;
        r.masks = r.candidates.map((c) => rleDecode(c.segmentation));
        app.predictions.set(k, r);
        const s2 = cur();
        if (promptKey(s2) === k && s2.candidate === null) s2.candidate = r.best;
        render();
        app.lastLatency = performance.now() - t0;
        $('latency').textContent = 'mask: ' + app.lastLatency.toFixed(0) + ' ms (server ' + r.timing_ms.total.toFixed(0) + ')';
        $('latency').className = 'pill ' + (app.lastLatency <= 50 ? 'ok' : 'busy');
      }
    } catch (e) {
      say('mask request failed: ' + e.message, true);
      $('latency').className = 'pill bad';
    } finally {
      app.inflight = false;
    }
  }

  // ---- masks ----
  function paintDisc(mask, cx, cy, r, v) {
    const W = app.W, H = app.H;
    const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(W - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(H - 1, Math.ceil(cy + r));
    const r2 = r * r;
    for (let y = y0; y <= y1; y++) {
      const dy = y + 0.5 - cy;
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx;
        if (dx * dx + dy * dy <= r2) mask[y * W + x] = v;
      }
    }
  }

  function applyStroke(mask, st) {
    const v = st.mode === 'brush' ? 1 : 0;
    const pts = st.points;
    paintDisc(mask, pts[0][0], pts[0][1], st.radius, v);
    for (let i = 1; i < pts.length; i++) {
      const [ax, ay] = pts[i - 1], [bx, by] = pts[i];
      const d = Math.hypot(bx - ax, by - ay);
      const steps = Math.max(1, Math.ceil(d / Math.max(0.5, st.radius / 3)));
      for (let k = 1; k <= steps; k++) paintDisc(mask, ax + (bx - ax) * k / steps, ay + (by - ay) * k / steps, st.radius, v);
    }
  }

  // The mask the user sees now: the chosen candidate plus brush and eraser strokes.
  function workingMask(state) {
    const s = state || cur();
    const pred = app.predictions.get(promptKey(s));
    let mask;
    if (hasPrompt(s) && pred && s.candidate !== null) mask = pred.masks[s.candidate].slice();
    else mask = new Uint8Array(app.W * app.H);
    for (const st of s.strokes) applyStroke(mask, st);
    return mask;
  }

  // The mask as translucent fill with an opaque outline (pixels with an unset 4-neighbour).
  function maskToImageData(ctx, mask, rgba) {
    const W = app.W, H = app.H;
    const data = ctx.createImageData(W, H);
    const u32 = new Uint32Array(data.data.buffer);
    const fill = (rgba[3] << 24) | (rgba[2] << 16) | (rgba[1] << 8) | rgba[0];  // little-endian RGBA
    const edge = (255 << 24) | (rgba[2] << 16) | (rgba[1] << 8) | rgba[0];
    for (let y = 0, i = 0; y < H; y++) {
      for (let x = 0; x < W; x++, i++) {
        if (!mask[i]) continue;
        const border = x === 0 || y === 0 || x === W - 1 || y === H - 1 ||
          !mask[i - 1] || !mask[i + 1] || !mask[i - W] || !mask[i + W];
        u32[i] = border ? edge : fill;
      }
    }
    return data;
  }

  // Shows the image as large as the stage allows (small images are scaled up too).
  function fitImage() {
    if (!app.W) return;
    const stage = $('stage');
    const s = Math.min((stage.clientWidth - 16) / app.W, (stage.clientHeight - 16) / app.H);
    img.style.width = Math.max(1, Math.floor(app.W * s)) + 'px';
    img.style.height = Math.max(1, Math.floor(app.H * s)) + 'px';
  }

  // ---- drawing ----
  function renderAnnotations() {
    const ctx = annLayer.getContext('2d');
    ctx.clearRect(0, 0, app.W, app.H);
    if (!app.showAccepted || app.annotations.length === 0) return;
    const data = ctx.createImageData(app.W, app.H);
    const u32 = new Uint32Array(data.data.buffer);
    app.annotations.forEach((a, i) => {
      const [r, g, b] = PALETTE[i % PALETTE.length];
      const alpha = a.id === app.selectedAnn ? 200 : 110;
      const c = (alpha << 24) | (b << 16) | (g << 8) | r;
      const m = a.mask || (a.mask = rleDecode(a.segmentation));
      for (let k = 0; k < m.length; k++) if (m[k]) u32[k] = c;
    });
    ctx.putImageData(data, 0, 0);
  }

  function render() {
    if (!app.image) return;
    const s = cur();
    const known = hasPrompt(s) ? app.predictions.get(promptKey(s)) : null;
    if (known && s.candidate === null) s.candidate = known.best;  // e.g. after undo to a known prompt
    const ctx = curLayer.getContext('2d');
    ctx.clearRect(0, 0, app.W, app.H);
    const mask = workingMask(s);
    app.lastMask = mask;
    ctx.putImageData(maskToImageData(ctx, mask, [30, 144, 255, 120]), 0, 0);
    const scale = app.W / Math.max(1, curLayer.clientWidth || app.W);  // image px per display px
    if (s.box) {
      ctx.strokeStyle = '#ffd34d';
      ctx.lineWidth = 2 * scale;
      ctx.strokeRect(s.box[0], s.box[1], s.box[2] - s.box[0], s.box[3] - s.box[1]);
    }
    for (const [x, y, l] of s.points) {
      ctx.beginPath();
      ctx.arc(x, y, 6 * scale, 0, 2 * Math.PI);
      ctx.fillStyle = l === 1 ? '#2ecc40' : '#ff4136';
      ctx.fill();
      ctx.lineWidth = 2 * scale;
      ctx.strokeStyle = '#fff';
      ctx.stroke();
    }
    renderCandidates(s);
    $('btn-undo').disabled = app.hpos <= 0;
    $('btn-redo').disabled = app.hpos >= app.history.length - 1;
    $('btn-accept').disabled = !mask.some((v) => v);
  }

  function renderCandidates(s) {
    const pred = hasPrompt(s) ? app.predictions.get(promptKey(s)) : null;
    for (let i = 0; i < 3; i++) {
      const btn = $('cand-' + i);
      const cv = btn.querySelector('canvas');
      const ctx = cv.getContext('2d');
      ctx.clearRect(0, 0, cv.width, cv.height);
      const c = pred && pred.candidates[i];
      btn.disabled = !c;
      btn.classList.toggle('active', !!c && s.candidate === i);
      btn.querySelector('span').textContent = (i + 1) + ' · ' + (c ? 'IoU ' + c.iou.toFixed(2) : '–');
      if (!c) continue;
      ctx.drawImage(img, 0, 0, cv.width, cv.height);
      const m = pred.masks[i];
      const d = ctx.getImageData(0, 0, cv.width, cv.height);
      for (let y = 0; y < cv.height; y++) {
        const sy = Math.min(app.H - 1, Math.floor((y + 0.5) * app.H / cv.height));
        for (let x = 0; x < cv.width; x++) {
          const sx = Math.min(app.W - 1, Math.floor((x + 0.5) * app.W / cv.width));
          if (m[sy * app.W + sx]) {
            const o = 4 * (y * cv.width + x);
            d.data[o] = (d.data[o] + 30) >> 1; d.data[o + 1] = (d.data[o + 1] + 144) >> 1; d.data[o + 2] = (d.data[o + 2] + 255) >> 1;
          }
        }
      }
      ctx.putImageData(d, 0, 0);
    }
  }

  function renderAnnotationList() {
    const ul = $('ann-list');
    ul.textContent = '';
    app.annotations.forEach((a, i) => {
      const li = document.createElement('li');
      li.dataset.id = a.id;
      if (a.id === app.selectedAnn) li.className = 'selected';
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = 'rgb(' + PALETTE[i % PALETTE.length].join(',') + ')';
      const t = document.createElement('span');
      t.textContent = '#' + a.id + ' · ' + a.area + ' px · ' + a.seconds.toFixed(1) + ' s · ' + a.user;
      li.append(sw, t);
      li.addEventListener('click', () => { app.selectedAnn = app.selectedAnn === a.id ? null : a.id; renderAnnotationList(); renderAnnotations(); });
      ul.append(li);
    });
    $('ann-count').textContent = '(' + app.annotations.length + ')';
    $('btn-delete').disabled = app.selectedAnn === null;
  }

  function update() {
    render();
    requestPrediction();
  }

  // ---- images ----
  async function openImage(name) {
    const seq = ++app.loadSeq;
    say('');
    const info = await api('/api/images/' + encodeURIComponent(name));
    if (seq !== app.loadSeq) return;
    app.image = info;
    app.W = info.width; app.H = info.height;
    app.predictions = new Map();
    app.annotations = info.annotations;
    app.selectedAnn = null;
    history.replaceState(null, '', '#image=' + encodeURIComponent(name));
    $('image-name').textContent = name;
    $('image-index').textContent = (info.index + 1) + ' / ' + info.count;
    $('btn-prev').disabled = info.prev === null;
    $('btn-next').disabled = info.next === null;
    $('export-sa1b-image').href = '/api/export?format=sa1b&image=' + encodeURIComponent(name);
    for (const c of [annLayer, curLayer]) { c.width = app.W; c.height = app.H; }
    await new Promise((resolve) => {
      img.onload = resolve;
      img.onerror = () => { say('cannot load the image file', true); resolve(); };
      img.src = info.url;
    });
    if (seq !== app.loadSeq) return;
    fitImage();
    resetMask();
    renderAnnotations();
    renderAnnotationList();
    pollEmbedding(name, seq);
    document.body.dataset.ready = name;  // for automated tests: this image is on screen
  }

  async function pollEmbedding(name, seq) {
    const pill = $('embedding');
    for (;;) {
      if (seq !== app.loadSeq) return;
      let state = 'unknown';
      try { state = (await api('/api/embedding?image=' + encodeURIComponent(name))).state; } catch (e) { state = 'error: ' + e.message; }
      if (seq !== app.loadSeq) return;
      pill.textContent = 'embedding: ' + state;
      pill.className = 'pill ' + (state === 'ready' ? 'ok' : state.startsWith('failed') || state.startsWith('error') ? 'bad' : 'busy');
      if (state === 'ready' || state.startsWith('failed') || state.startsWith('error')) return;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async function go(delta) {
    const name = delta < 0 ? app.image.prev : app.image.next;
    if (name) await openImage(name);
  }

  async function nextUnannotated() {
    const r = await api('/api/next-unannotated?after=' + encodeURIComponent(app.image.name));
    if (r.name === null) say('every image has annotations');
    else await openImage(r.name);
  }

  // ---- actions ----
  async function accept() {
    const s = cur();
    const mask = workingMask(s);
    if (!mask.some((v) => v)) { say('nothing to accept: the mask is empty', true); return; }
    const pred = hasPrompt(s) ? app.predictions.get(promptKey(s)) : null;
    const cand = pred && s.candidate !== null ? pred.candidates[s.candidate] : null;
    const seconds = app.maskStart === null ? 0 : (performance.now() - app.maskStart) / 1000;
    const body = {
      image: app.image.name,
      segmentation: rleEncode(mask, app.H, app.W),
      seconds,
      predicted_iou: cand ? cand.iou : null,
      clicks: { points: s.points, box: s.box, candidate: cand ? s.candidate : null, token: cand ? cand.token : null, strokes: s.strokes },
    };
    $('btn-accept').disabled = true;
    try {
      const saved = await postJson('/api/annotations', body);
      app.annotations.push(saved);
      say('saved annotation #' + saved.id + ' (' + saved.area + ' px, ' + seconds.toFixed(1) + ' s)');
      resetMask();
      renderAnnotations();
      renderAnnotationList();
    } catch (e) {
      say('accept failed: ' + e.message, true);
      render();
    }
  }

  async function deleteSelected() {
    if (app.selectedAnn === null) return;
    const id = app.selectedAnn;
    try {
      await api('/api/annotations/' + id, { method: 'DELETE' });
      app.annotations = app.annotations.filter((a) => a.id !== id);
      app.selectedAnn = null;
      say('deleted annotation #' + id);
      renderAnnotations();
      renderAnnotationList();
    } catch (e) {
      say('delete failed: ' + e.message, true);
    }
  }

  function undo() { if (app.hpos > 0) { app.hpos--; update(); } }
  function redo() { if (app.hpos < app.history.length - 1) { app.hpos++; update(); } }
  function clearMask() { if (hasPrompt(cur()) || cur().strokes.length) push(emptyState()); }
  function pickCandidate(i) {
    const s = cur();
    const pred = hasPrompt(s) && app.predictions.get(promptKey(s));
    if (!pred || !pred.candidates[i] || s.candidate === i) return;
    const n = clone(s);
    n.candidate = i;
    push(n);
  }
  function setTool(t) {
    app.tool = t;
    for (const b of document.querySelectorAll('.tool')) b.classList.toggle('active', b.dataset.tool === t);
    curLayer.className = t === 'points' ? '' : t;
  }
  function setBrush(px) {
    app.brush = Math.max(1, Math.min(200, Math.round(px)));
    $('brush-size').value = app.brush;
    $('brush-size-value').textContent = app.brush;
  }

  // ---- pointer input ----
  function toImage(ev) {
    const r = curLayer.getBoundingClientRect();
    const x = (ev.clientX - r.left) * app.W / r.width;
    const y = (ev.clientY - r.top) * app.H / r.height;
    return [Math.min(app.W, Math.max(0, x)), Math.min(app.H, Math.max(0, y))];
  }
  let drag = null;  // {kind: 'box'|'stroke'|'click', ...}

  curLayer.addEventListener('contextmenu', (ev) => ev.preventDefault());
  curLayer.addEventListener('pointerdown', (ev) => {
    if (!app.image) return;
    ev.preventDefault();
    curLayer.setPointerCapture(ev.pointerId);
    const p = toImage(ev);
    if (app.tool === 'points') {
      if (ev.button !== 0 && ev.button !== 2) return;
      drag = { kind: 'click', button: ev.button, start: p, startDisplay: [ev.clientX, ev.clientY] };
    } else if (ev.button === 0) {
      const radius = app.brush * app.W / curLayer.getBoundingClientRect().width;
      drag = { kind: 'stroke', stroke: { mode: app.tool === 'brush' ? 'brush' : 'erase', radius, points: [p] } };
      if (app.maskStart === null) app.maskStart = performance.now();
      const ctx = curLayer.getContext('2d');
      ctx.fillStyle = app.tool === 'brush' ? 'rgba(30,144,255,0.55)' : 'rgba(0,0,0,0.6)';
      ctx.beginPath(); ctx.arc(p[0], p[1], radius, 0, 2 * Math.PI); ctx.fill();
    }
  });
  curLayer.addEventListener('pointermove', (ev) => {
    if (!drag) return;
    const p = toImage(ev);
    if (drag.kind === 'click' && drag.button === 0 &&
        Math.hypot(ev.clientX - drag.startDisplay[0], ev.clientY - drag.startDisplay[1]) > 5) {
      drag.kind = 'box';
    }
    if (drag.kind === 'box') {
      const r = curLayer.getBoundingClientRect();
      const [ax, ay] = drag.startDisplay;
      rubber.hidden = false;
      rubber.style.left = (Math.min(ax, ev.clientX) - r.left) + 'px';
      rubber.style.top = (Math.min(ay, ev.clientY) - r.top) + 'px';
      rubber.style.width = Math.abs(ev.clientX - ax) + 'px';
      rubber.style.height = Math.abs(ev.clientY - ay) + 'px';
      drag.end = p;
    } else if (drag.kind === 'stroke') {
      const st = drag.stroke;
      const last = st.points[st.points.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) < st.radius / 4) return;
      st.points.push(p);
      const ctx = curLayer.getContext('2d');  // live feedback; the exact mask is drawn on release
      ctx.strokeStyle = st.mode === 'brush' ? 'rgba(30,144,255,0.55)' : 'rgba(0,0,0,0.6)';
      ctx.lineWidth = 2 * st.radius;
      ctx.lineCap = 'round';
      ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    }
  });
  curLayer.addEventListener('pointerup', (ev) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    rubber.hidden = true;
    const s = clone(cur());
    if (d.kind === 'click') {
      const [x, y] = d.start;
      const scale = app.W / curLayer.getBoundingClientRect().width;
      const hit = s.points.findIndex((q) => Math.hypot(q[0] - x, q[1] - y) <= 8 * scale);
      if (hit >= 0) s.points.splice(hit, 1);
      else s.points.push([x, y, d.button === 2 ? 0 : 1]);
      s.candidate = null;
      push(s);
    } else if (d.kind === 'box' && d.end) {
      const b = [Math.min(d.start[0], d.end[0]), Math.min(d.start[1], d.end[1]),
        Math.max(d.start[0], d.end[0]), Math.max(d.start[1], d.end[1])];
      if (b[2] - b[0] < 1 || b[3] - b[1] < 1) { render(); return; }
      s.box = b;
      s.candidate = null;
      push(s);
    } else if (d.kind === 'stroke') {
      s.strokes.push(d.stroke);
      push(s);
    }
  });

  // ---- keyboard ----
  document.addEventListener('keydown', (ev) => {
    if (ev.target && (ev.target.tagName === 'INPUT' && ev.target.type !== 'range' && ev.target.type !== 'checkbox')) return;
    const k = ev.key;
    const ctrl = ev.ctrlKey || ev.metaKey;
    let handled = true;
    if (ctrl && (k === 'z' || k === 'Z')) { if (ev.shiftKey) redo(); else undo(); }
    else if (ctrl && (k === 'y' || k === 'Y')) redo();
    else if (ctrl) handled = false;
    else if (k === 'Enter' || k === 'a' || k === 'A') accept();
    else if (k === 'Escape') clearMask();
    else if (k === '1' || k === '2' || k === '3') pickCandidate(Number(k) - 1);
    else if (k === 'p' || k === 'P') setTool('points');
    else if (k === 'b' || k === 'B') setTool('brush');
    else if (k === 'e' || k === 'E') setTool('eraser');
    else if (k === '[') setBrush(app.brush / 1.25);
    else if (k === ']') setBrush(app.brush * 1.25);
    else if (k === 'ArrowLeft') go(-1);
    else if (k === 'ArrowRight') go(1);
    else if (k === 'n' || k === 'N') nextUnannotated();
    else if (k === 'Delete' || k === 'Backspace') deleteSelected();
    else if (k === 'v' || k === 'V') { $('show-accepted').checked = !$('show-accepted').checked; app.showAccepted = $('show-accepted').checked; renderAnnotations(); }
    else handled = false;
    if (handled) ev.preventDefault();
  });

  // ---- buttons ----
  for (const b of document.querySelectorAll('.tool')) b.addEventListener('click', () => setTool(b.dataset.tool));
  for (let i = 0; i < 3; i++) $('cand-' + i).addEventListener('click', () => pickCandidate(i));
  $('btn-undo').addEventListener('click', undo);
  $('btn-redo').addEventListener('click', redo);
  $('btn-clear').addEventListener('click', clearMask);
  $('btn-accept').addEventListener('click', accept);
  $('btn-prev').addEventListener('click', () => go(-1));
  $('btn-next').addEventListener('click', () => go(1));
  $('btn-next-unannotated').addEventListener('click', nextUnannotated);
  $('btn-delete').addEventListener('click', deleteSelected);
  $('brush-size').addEventListener('input', (ev) => setBrush(Number(ev.target.value)));
  $('show-accepted').addEventListener('change', (ev) => { app.showAccepted = ev.target.checked; renderAnnotations(); });
  // Buttons keep no focus, so that Enter and Space reach the shortcuts rather than the last button.
  for (const b of document.querySelectorAll('button')) b.addEventListener('mouseup', () => b.blur());
  window.addEventListener('resize', () => { fitImage(); render(); });

  setInterval(() => {
    const t = app.maskStart === null ? 0 : (performance.now() - app.maskStart) / 1000;
    const el = $('timer');
    el.textContent = 'this mask: ' + t.toFixed(1) + ' s' + (t > SLOW_SECONDS ? ' (over 30 s: consider moving on)' : '');
    el.classList.toggle('slow', t > SLOW_SECONDS);
  }, 200);

  // ---- start ----
  async function start() {
    try {
      app.info = await api('/api/info');
      $('user').textContent = 'annotator: ' + app.info.user + ' · model: ' + String(app.info.model).split('/').pop();
      app.images = (await api('/api/images')).images;
      if (app.images.length === 0) { say('the image folder has no images', true); return; }
      const m = /#image=([^&]+)/.exec(location.hash);
      let name = m ? decodeURIComponent(m[1]) : null;
      if (!name || !app.images.some((i) => i.name === name)) {
        const r = await api('/api/next-unannotated');
        name = r.name || app.images[0].name;
      }
      await openImage(name);
    } catch (e) {
      say('cannot start: ' + e.message, true);
    }
  }

  // A small window for automated tests and power users (read-only views of the state).
  window.samAnnotate = {
    state: () => clone(cur()),
    maskArea: () => (app.lastMask ? app.lastMask.reduce((a, v) => a + v, 0) : 0),
    annotations: () => app.annotations.map((a) => ({ id: a.id, area: a.area, seconds: a.seconds })),
    latency: () => app.lastLatency,
    inflight: () => app.inflight,
    prediction: () => { const p = app.predictions.get(promptKey(cur())); return p ? { best: p.best, candidates: p.candidates.map((c) => ({ iou: c.iou, area: c.area, token: c.token })) } : null; },
    rle: { decode: rleDecode, encode: rleEncode, fromString: rleCountsFromString, toString: rleCountsToString },
  };
  start();
})();
