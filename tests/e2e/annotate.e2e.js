#!/usr/bin/env node
// End-to-end test of sam_annotate in a real browser: Debian's Chromium, headless, driven by
// playwright-core. It starts the server on the golden tiny model and a temporary image folder,
// then does what an annotator does: positive and negative clicks, picks a mask, brushes, undoes
// and redoes, accepts, reloads (the mask is still there), draws a box on the next unannotated
// image, exports COCO and SA-1B from the page, deletes. It also times click -> mask on the page.
//
//   npm ci --prefix tests/e2e     # once: playwright-core (no browser download; uses /usr/bin/chromium)
//   node tests/e2e/annotate.e2e.js --bin build/bin/sam_annotate [--shared ../shared]
//        [--screenshot docs/images/annotate.png] [--chromium /usr/bin/chromium] [--keep]
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const repo = path.resolve(__dirname, '..', '..');
function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0) return def;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith('--') ? true : v;
}
const BIN = path.resolve(arg('bin', path.join(repo, 'build', 'bin', 'sam_annotate')));
const SHARED = path.resolve(arg('shared', process.env.SAM_SHARED_DIR || path.join(repo, '..', 'shared')));
const TINY = path.join(SHARED, 'golden', 'tiny');
const CHROMIUM = arg('chromium', '/usr/bin/chromium');
const SCREENSHOT = arg('screenshot', null);
const KEEP = arg('keep', false) === true;

let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) { passed++; console.log('ok - ' + what); } else { failed++; console.log('not ok - ' + what); }
  return cond;
}

// A 24-bit BMP (bottom-up rows) with a few solid shapes: an image the browser and OpenCV both read
// without any encoder library.
function writeShapesBmp(file, w, h) {
  const row = Math.ceil((w * 3) / 4) * 4;
  const buf = Buffer.alloc(54 + row * h);
  buf.write('BM', 0);
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(w, 18);
  buf.writeInt32LE(h, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(24, 28);
  buf.writeUInt32LE(row * h, 34);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let rgb = [40 + (y * 60) / h, 70, 90];
      if ((x - 0.3 * w) ** 2 + (y - 0.5 * h) ** 2 < (0.18 * h) ** 2) rgb = [235, 200, 40];
      if (x > 0.55 * w && x < 0.85 * w && y > 0.25 * h && y < 0.75 * h) rgb = [200, 40, 60];
      const o = 54 + (h - 1 - y) * row + x * 3;
      buf[o] = rgb[2]; buf[o + 1] = rgb[1]; buf[o + 2] = rgb[0];
    }
  }
  fs.writeFileSync(file, buf);
}

function startServer(dir) {
  return new Promise((resolve, reject) => {
    const args = ['--images', path.join(dir, 'images'), '--db', path.join(dir, 'annotations.sqlite'),
      '--model', path.join(TINY, 'config.json'), '--checkpoint', path.join(TINY, 'sam.pth'),
      '--port', '0', '--user', 'e2e'];
    const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error('sam_annotate did not start:\n' + out)), 60000);
    const onData = (d) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ proc, url: m[1], log: () => out }); }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error('sam_annotate exited with ' + code + ':\n' + out)); });
  });
}

async function main() {
  for (const [what, p] of [['--bin', BIN], ['golden tiny model', TINY], ['--chromium', CHROMIUM]])
    if (!fs.existsSync(p)) throw new Error(what + ': ' + p + ' does not exist');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sam-annotate-e2e-'));
  fs.mkdirSync(path.join(dir, 'images'));
  fs.copyFileSync(path.join(TINY, 'image.jpg'), path.join(dir, 'images', '01_photo.jpg'));
  writeShapesBmp(path.join(dir, 'images', '02_shapes.bmp'), 320, 240);
  fs.copyFileSync(path.join(TINY, 'image.jpg'), path.join(dir, 'images', '03_photo_again.jpg'));

  const server = await startServer(dir);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sam-annotate-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, acceptDownloads: true,
    viewport: { width: 1400, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const api = (p) => page.evaluate((q) => fetch(q).then((r) => r.json()), p);
  const S = () => page.evaluate(() => window.samAnnotate.state());
  const idle = () => page.waitForFunction(() => !window.samAnnotate.inflight() && window.samAnnotate.prediction() !== null, null, { timeout: 60000 });

  // Pixel (x, y) of the image -> page coordinates of the overlay.
  async function at(x, y) {
    const box = await page.locator('#cur-layer').boundingBox();
    const W = await page.evaluate(() => document.getElementById('cur-layer').width);
    const H = await page.evaluate(() => document.getElementById('cur-layer').height);
    return [box.x + (x * box.width) / W, box.y + (y * box.height) / H];
  }

  try {
    // Open: the first unannotated image, its embedding made in the background.
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="01_photo.jpg"]', { timeout: 30000 });
    check(true, 'page opens on the first unannotated image');
    await page.waitForFunction(() => document.getElementById('embedding').textContent === 'embedding: ready', null, { timeout: 120000 });
    check(true, 'embedding computed in the background');
    check(/this mask: \d+\.\d s/.test(await page.textContent('#timer')), 'mask timer shown');
    check((await page.textContent('#shortcuts')).includes('negative point'), 'shortcuts shown on screen');

    // Positive click -> three candidates.
    let [px, py] = await at(407.66, 129.5);
    await page.mouse.click(px, py);
    await idle();
    let st = await S();
    check(st.points.length === 1 && st.points[0][2] === 1, 'left click adds a positive point');
    const pred1 = await page.evaluate(() => window.samAnnotate.prediction());
    check(pred1.candidates.length === 3, 'three candidate masks');
    check(await page.isEnabled('#cand-2'), 'candidate buttons enabled');
    const area1 = await page.evaluate(() => window.samAnnotate.maskArea());
    check(area1 > 0, 'mask drawn at image resolution (' + area1 + ' px)');

    // Negative click.
    [px, py] = await at(520.49, 438.12);
    await page.mouse.click(px, py, { button: 'right' });
    await page.waitForFunction(() => window.samAnnotate.state().points.length === 2, null, { timeout: 10000 });
    await idle();
    st = await S();
    check(st.points[1][2] === 0, 'right click adds a negative point');
    check(st.candidate === 0, 'with two points the single-mask output is preselected');

    // Pick another candidate with the keyboard, then back with a click.
    await page.keyboard.press('2');
    check((await S()).candidate === 1, 'key 2 picks the second candidate');
    await page.click('#cand-0');
    check((await S()).candidate === 0, 'clicking a candidate picks it');
    const areaPicked = await page.evaluate(() => window.samAnnotate.maskArea());

    // Brush a stroke in a corner the mask does not cover.
    await page.keyboard.press('b');
    const [bx0, by0] = await at(20, 300);
    const [bx1, by1] = await at(120, 330);
    await page.mouse.move(bx0, by0);
    await page.mouse.down();
    for (let k = 1; k <= 10; k++) await page.mouse.move(bx0 + ((bx1 - bx0) * k) / 10, by0 + ((by1 - by0) * k) / 10);
    await page.mouse.up();
    st = await S();
    const areaBrushed = await page.evaluate(() => window.samAnnotate.maskArea());
    check(st.strokes.length === 1 && st.strokes[0].mode === 'brush', 'brush stroke recorded');
    check(areaBrushed > areaPicked, 'brush adds pixels (' + areaPicked + ' -> ' + areaBrushed + ')');
    await page.keyboard.press('Control+z');
    check((await S()).strokes.length === 0 && await page.evaluate(() => window.samAnnotate.maskArea()) === areaPicked, 'undo removes the stroke');
    await page.keyboard.press('Control+y');
    check((await S()).strokes.length === 1, 'redo brings it back');
    // Eraser: a small cut through the brushed stroke.
    await page.keyboard.press('e');
    const [ex, ey] = await at(70, 315);
    await page.mouse.move(ex, ey);
    await page.mouse.down();
    await page.mouse.move(ex + 5, ey + 5);
    await page.mouse.up();
    const areaErased = await page.evaluate(() => window.samAnnotate.maskArea());
    check(areaErased < areaBrushed, 'eraser removes pixels');
    await page.keyboard.press('p');

    // Accept: saved, listed, mask reset.
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.samAnnotate.annotations().length === 1, null, { timeout: 10000 });
    const saved = (await page.evaluate(() => window.samAnnotate.annotations()))[0];
    check(saved.area === areaErased, 'accepted mask saved as drawn (' + saved.area + ' px)');
    check((await page.textContent('#message')).includes('saved annotation #' + saved.id), 'accept acknowledged on the page');
    check((await S()).points.length === 0, 'a fresh mask after accept');
    const viaApi = await api('/api/images/01_photo.jpg');
    check(viaApi.annotations.length === 1 && viaApi.annotations[0].clicks.strokes.length === 2, 'clicks and strokes stored with the mask');

    // Reload: the annotation is still there.
    await page.reload();
    await page.waitForSelector('body[data-ready="01_photo.jpg"]', { timeout: 30000 });
    const afterReload = await page.evaluate(() => window.samAnnotate.annotations());
    check(afterReload.length === 1 && afterReload[0].id === saved.id, 'annotation kept after reload');
    check(await page.locator('#ann-list li').count() === 1, 'annotation listed after reload');

    // Page-level latency: click -> mask drawn, 20 single clicks.
    const lat = [];
    for (let i = 0; i < 20; i++) {
      await page.keyboard.press('Escape');
      const [cx, cy] = await at(40 + ((i * 97) % 560), 40 + ((i * 53) % 400));
      await page.mouse.click(cx, cy);
      await page.waitForFunction(() => !window.samAnnotate.inflight() && window.samAnnotate.prediction() !== null, null, { timeout: 60000 });
      lat.push(await page.evaluate(() => window.samAnnotate.latency()));
    }
    lat.sort((a, b) => a - b);
    console.log('# page click -> mask (ms): p50 ' + lat[10].toFixed(1) + ', max ' + lat[19].toFixed(1));
    check(lat[10] > 0, 'latency measured on the page');
    await page.keyboard.press('Escape');

    // Export from the page: COCO and SA-1B downloads.
    const [coco] = await Promise.all([page.waitForEvent('download'), page.click('#export-coco')]);
    const cocoJson = JSON.parse(fs.readFileSync(await coco.path(), 'utf8'));
    check(coco.suggestedFilename() === 'annotations_coco.json', 'COCO download named');
    check(cocoJson.images.length === 3 && cocoJson.annotations.length === 1 &&
          cocoJson.annotations[0].segmentation.counts === viaApi.annotations[0].segmentation.counts, 'COCO export holds the mask');
    const [sa] = await Promise.all([page.waitForEvent('download'), page.click('#export-sa1b-image')]);
    const saJson = JSON.parse(fs.readFileSync(await sa.path(), 'utf8'));
    check(sa.suggestedFilename() === '01_photo.json' && saJson.annotations.length === 1, 'SA-1B export of this image');

    // Next unannotated image; a box there.
    await page.keyboard.press('n');
    await page.waitForSelector('body[data-ready="02_shapes.bmp"]', { timeout: 30000 });
    check(true, 'N jumps to the next unannotated image');
    await page.waitForFunction(() => document.getElementById('embedding').textContent === 'embedding: ready', null, { timeout: 120000 });
    const [q0x, q0y] = await at(170, 50);
    const [q1x, q1y] = await at(280, 190);
    await page.mouse.move(q0x, q0y);
    await page.mouse.down();
    for (let k = 1; k <= 8; k++) await page.mouse.move(q0x + ((q1x - q0x) * k) / 8, q0y + ((q1y - q0y) * k) / 8);
    await page.mouse.up();
    await idle();
    st = await S();
    check(st.box !== null && st.points.length === 0 && st.box[2] - st.box[0] > 90, 'drag draws a box');
    check(await page.evaluate(() => window.samAnnotate.maskArea()) > 0, 'box gives a mask');
    await page.keyboard.press('a');
    await page.waitForFunction(() => window.samAnnotate.annotations().length === 1, null, { timeout: 10000 });
    check(true, 'A accepts too');

    // Back to the first image: delete its annotation.
    await page.keyboard.press('ArrowLeft');
    await page.waitForSelector('body[data-ready="01_photo.jpg"]', { timeout: 30000 });
    await page.click('#ann-list li');
    await page.keyboard.press('Delete');
    await page.waitForFunction(() => window.samAnnotate.annotations().length === 0, null, { timeout: 10000 });
    check((await api('/api/images/01_photo.jpg')).annotations.length === 0, 'Delete removes the selected annotation');

    // A screenshot for the docs: one accepted mask and one in progress with its candidates.
    if (SCREENSHOT) {
      [px, py] = await at(407.66, 129.5);
      await page.mouse.click(px, py);
      await idle();
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => window.samAnnotate.annotations().length === 1, null, { timeout: 10000 });
      [px, py] = await at(345, 176);  // the balloon: three nested candidates, the smallest picked
      await page.mouse.click(px, py);
      await idle();
      await page.keyboard.press('1');
      await page.mouse.move(5, 5);
      fs.mkdirSync(path.dirname(path.resolve(SCREENSHOT)), { recursive: true });
      await page.screenshot({ path: SCREENSHOT });
      console.log('# screenshot: ' + SCREENSHOT);
    }
    check(consoleErrors.length === 0, 'no errors in the browser console' + (consoleErrors.length ? ': ' + consoleErrors.join(' | ') : ''));
  } finally {
    await ctx.close();
    server.proc.kill('SIGTERM');
    if (!KEEP) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(profile, { recursive: true, force: true });
    } else {
      console.log('# kept ' + dir);
    }
  }
}

main().then(() => {
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed === 0 ? 0 : 1);
}, (e) => {
  console.log('not ok - ' + (e && e.stack ? e.stack : e));
  console.log(passed + ' passed, ' + (failed + 1) + ' failed');
  process.exit(1);
});
