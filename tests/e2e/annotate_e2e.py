#!/usr/bin/python3
"""End-to-end test of sam_annotate in a real browser: Debian's Chromium, headless, driven through
chromedriver by Debian's python3-selenium (no other dependency than the standard library).

It starts the server on the golden tiny model and a temporary image folder, then does what an
annotator does: positive and negative clicks, picks a mask, brushes, undoes and redoes, accepts,
reloads (the mask is still there), draws a box on the next unannotated image, exports COCO and
SA-1B from the page, deletes. It also times click -> mask on the page. Every wait is a condition on
the page's state (WebDriverWait), never a fixed sleep.

  apt-get install -y chromium chromium-driver python3-selenium    # or scripts/setup.sh
  python3 tests/e2e/annotate_e2e.py --bin build/bin/sam_annotate [--shared ../shared]
      [--screenshot docs/images/annotate.png] [--chromium /usr/bin/chromium]
      [--chromedriver /usr/bin/chromedriver] [--keep]

Prints one "ok - ..." or "not ok - ..." line per check and "N passed, M failed" at the end; exits
non-zero when anything failed.
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import traceback

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.mouse_button import MouseButton
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:
    print("not ok - %s: this test needs Debian's python3-selenium (run scripts/setup.sh) and "
          "/usr/bin/python3 (%s)" % (e, sys.executable))
    print("0 passed, 1 failed")
    sys.exit(1)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIEWPORT = (1400, 860)


def parse_args():
    p = argparse.ArgumentParser(description="sam_annotate in headless Chromium (selenium)")
    p.add_argument("--bin", default=os.path.join(REPO, "build", "bin", "sam_annotate"),
                   help="the sam_annotate program")
    p.add_argument("--shared", default=os.environ.get("SAM_SHARED_DIR") or os.path.join(REPO, "..", "shared"),
                   help="the shared fixtures (golden/tiny is used); default $SAM_SHARED_DIR or ../shared")
    p.add_argument("--screenshot", default=None, metavar="PATH",
                   help="save a PNG of the page after the annotation")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (images, database, downloads)")
    return p.parse_args()


ARGS = parse_args()
BIN = os.path.abspath(ARGS.bin)
SHARED = os.path.abspath(ARGS.shared)
TINY = os.path.join(SHARED, "golden", "tiny")

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print("ok - " + what, flush=True)
    else:
        failed += 1
        print("not ok - " + what, flush=True)
    return cond


def write_shapes_bmp(path, w, h):
    """A 24-bit BMP (bottom-up rows) with a few solid shapes: an image the browser and OpenCV both
    read without any encoder library."""
    row = (w * 3 + 3) // 4 * 4
    size = 54 + row * h
    buf = bytearray(size)
    struct.pack_into("<2sI4xI", buf, 0, b"BM", size, 54)
    struct.pack_into("<IiiHHII", buf, 14, 40, w, h, 1, 24, 0, row * h)
    for y in range(h):
        for x in range(w):
            rgb = (int(40 + y * 60 / h), 70, 90)
            if (x - 0.3 * w) ** 2 + (y - 0.5 * h) ** 2 < (0.18 * h) ** 2:
                rgb = (235, 200, 40)
            if 0.55 * w < x < 0.85 * w and 0.25 * h < y < 0.75 * h:
                rgb = (200, 40, 60)
            o = 54 + (h - 1 - y) * row + x * 3
            buf[o], buf[o + 1], buf[o + 2] = rgb[2], rgb[1], rgb[0]
    with open(path, "wb") as f:
        f.write(buf)


class Server:
    """sam_annotate in a child process on a free loopback port; its output is read all along (so
    that a full pipe never blocks it) and kept for the report."""

    def __init__(self, work):
        args = [BIN, "--images", os.path.join(work, "images"), "--db", os.path.join(work, "annotations.sqlite"),
                "--model", os.path.join(TINY, "config.json"), "--checkpoint", os.path.join(TINY, "sam.pth"),
                "--port", "0", "--user", "e2e"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = []
        self.url = None
        self.event = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.event.wait(60) or self.url is None:
            self.stop()
            code = self.proc.returncode
            why = "did not start within 60 s" if code is None else "exited with %s" % code
            raise RuntimeError("sam_annotate " + why + ":\n" + self.log())

    def _read(self):
        pattern = re.compile(r"listening on (http://127\.0\.0\.1:\d+/)")
        for line in iter(self.proc.stdout.readline, b""):
            self.out.append(line.decode("utf-8", "replace"))
            if self.url is None:
                m = pattern.search(line.decode("utf-8", "replace"))
                if m:
                    self.url = m.group(1)
                    self.event.set()
        self.event.set()  # exited: wakes the start-up wait

    def log(self):
        return "".join(self.out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)


def start_chromium(profile, downloads):
    opts = webdriver.ChromeOptions()
    opts.binary_location = ARGS.chromium
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--user-data-dir=" + profile, "--window-size=%d,%d" % VIEWPORT]:
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {
        "download.default_directory": downloads,
        "download.prompt_for_download": False,
        "download.directory_upgrade": True,
        "safebrowsing.enabled": False,
    })
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=ARGS.chromedriver), options=opts)
    # The page's own size, whatever the window decorations: the layout (and the screenshot) is
    # that of a 1400 x 860 viewport.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": downloads, "eventsEnabled": True})
    return driver


def main():
    for what, p in [("--bin", BIN), ("golden tiny model", TINY), ("--chromium", ARGS.chromium),
                    ("--chromedriver", ARGS.chromedriver)]:
        if not os.path.exists(p):
            raise RuntimeError(what + ": " + p + " does not exist")
    work = tempfile.mkdtemp(prefix="sam-annotate-e2e-")
    images = os.path.join(work, "images")
    downloads = os.path.join(work, "downloads")
    profile = os.path.join(work, "chromium-profile")
    for d in (images, downloads, profile):
        os.mkdir(d)
    shutil.copyfile(os.path.join(TINY, "image.jpg"), os.path.join(images, "01_photo.jpg"))
    write_shapes_bmp(os.path.join(images, "02_shapes.bmp"), 320, 240)
    shutil.copyfile(os.path.join(TINY, "image.jpg"), os.path.join(images, "03_photo_again.jpg"))

    server = None
    driver = None
    try:
        server = Server(work)
        driver = start_chromium(profile, downloads)
        run(driver, server, downloads)
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.stop()
        if ARGS.keep:
            print("# kept " + work, flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(driver, server, downloads):
    console_errors = []

    def collect_console():
        # Chromium's console, errors only (uncaught exceptions and failed loads are SEVERE too).
        for e in driver.get_log("browser"):
            if e.get("level") == "SEVERE":
                console_errors.append(e.get("message", ""))

    def js(script, *args):
        return driver.execute_script(script, *args)

    def wait_js(expr, timeout, what):
        """Waits until the JavaScript expression `expr` is truthy on the page; returns its value."""
        try:
            return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
                lambda d: d.execute_script("return (" + expr + ");"))
        except TimeoutException:
            raise TimeoutException("after %g s still not: %s (%s)" % (timeout, expr, what)) from None

    def holds(expr, timeout=5):
        """Whether `expr` becomes true on the page within `timeout` s (for the checks)."""
        try:
            WebDriverWait(driver, timeout, poll_frequency=0.05).until(
                lambda d: d.execute_script("return (" + expr + ");"))
            return True
        except TimeoutException:
            return False

    def api(path):
        return js("return fetch(arguments[0]).then((r) => r.json());", path)

    def state():
        return js("return window.samAnnotate.state();")

    def mask_area():
        return js("return window.samAnnotate.maskArea();")

    def idle():
        wait_js("!window.samAnnotate.inflight() && window.samAnnotate.prediction() !== null", 60, "a mask shown")

    def ready(name, timeout=30):
        wait_js("document.body.dataset.ready === %s" % json.dumps(name), timeout, name + " on screen")

    def embedding_ready():
        wait_js("document.getElementById('embedding').textContent === 'embedding: ready'", 120, "embedding")

    def at(x, y):
        """Pixel (x, y) of the image -> viewport coordinates of the overlay."""
        r = js("const c = document.getElementById('cur-layer'); const b = c.getBoundingClientRect();"
               "return [b.left, b.top, b.width, b.height, c.width, c.height];")
        return (r[0] + x * r[2] / r[4], r[1] + y * r[3] / r[5])

    def mouse():
        return ActionBuilder(driver, duration=0)

    def move(a, p):
        a.pointer_action.move_to_location(round(p[0]), round(p[1]))

    def click(p, button=MouseButton.LEFT):
        a = mouse()
        move(a, p)
        a.pointer_action.pointer_down(button).pointer_up(button)
        a.perform()

    def drag(p0, p1, steps):
        a = mouse()
        move(a, p0)
        a.pointer_action.pointer_down(MouseButton.LEFT)
        for k in range(1, steps + 1):
            move(a, (p0[0] + (p1[0] - p0[0]) * k / steps, p0[1] + (p1[1] - p0[1]) * k / steps))
        a.pointer_action.pointer_up(MouseButton.LEFT)
        a.perform()

    def press(key, ctrl=False):
        c = ActionChains(driver, duration=0)
        if ctrl:
            c.key_down(Keys.CONTROL).send_keys(key).key_up(Keys.CONTROL)
        else:
            c.send_keys(key)
        c.perform()

    def download(selector, name):
        """Clicks the link `selector` and waits for the browser to finish a download; returns the
        file's name and content."""
        before = set(os.listdir(downloads))
        sizes = {}

        def done(_):
            # Finished: a new file under its final name, no partial download left, and a size that
            # is not zero and did not change since the previous poll (Chromium may show the final
            # name before the bytes are all written).
            names = os.listdir(downloads)
            if any(f.endswith(".crdownload") for f in names):
                return None
            new = [f for f in names if f not in before and not f.startswith(".")]
            if not new:
                return None
            size = os.path.getsize(os.path.join(downloads, new[0]))
            stable = size > 0 and sizes.get(new[0]) == size
            sizes[new[0]] = size
            return new[0] if stable else None
        driver.find_element(By.CSS_SELECTOR, selector).click()
        try:
            got = WebDriverWait(driver, 30, poll_frequency=0.05).until(done)
        except TimeoutException:
            raise TimeoutException("no download after clicking %s (%s): %s" % (selector, name, os.listdir(downloads))) from None
        with open(os.path.join(downloads, got), encoding="utf-8") as f:
            return got, f.read()

    # Open: the first unannotated image, its embedding made in the background.
    driver.get(server.url)
    ready("01_photo.jpg")
    check(True, "page opens on the first unannotated image")
    embedding_ready()
    check(True, "embedding computed in the background")
    check(re.search(r"this mask: \d+\.\d s", js("return document.getElementById('timer').textContent;")) is not None,
          "mask timer shown")
    check("negative point" in js("return document.getElementById('shortcuts').textContent;"),
          "shortcuts shown on screen")

    # Positive click -> three candidates.
    click(at(407.66, 129.5))
    idle()
    st = state()
    check(len(st["points"]) == 1 and st["points"][0][2] == 1, "left click adds a positive point")
    pred1 = js("return window.samAnnotate.prediction();")
    check(len(pred1["candidates"]) == 3, "three candidate masks")
    check(driver.find_element(By.ID, "cand-2").is_enabled(), "candidate buttons enabled")
    area1 = mask_area()
    check(area1 > 0, "mask drawn at image resolution (%d px)" % area1)

    # Negative click.
    click(at(520.49, 438.12), MouseButton.RIGHT)
    wait_js("window.samAnnotate.state().points.length === 2", 10, "the negative point")
    idle()
    st = state()
    check(st["points"][1][2] == 0, "right click adds a negative point")
    check(st["candidate"] == 0, "with two points the single-mask output is preselected")

    # Pick another candidate with the keyboard, then back with a click.
    press("2")
    check(holds("window.samAnnotate.state().candidate === 1"), "key 2 picks the second candidate")
    driver.find_element(By.ID, "cand-0").click()
    check(holds("window.samAnnotate.state().candidate === 0"), "clicking a candidate picks it")
    area_picked = mask_area()

    # Brush a stroke in a corner the mask does not cover.
    press("b")
    wait_js("document.getElementById('tool-brush').classList.contains('active')", 5, "the brush tool")
    drag(at(20, 300), at(120, 330), 10)
    holds("window.samAnnotate.state().strokes.length === 1")
    st = state()
    area_brushed = mask_area()
    check(len(st["strokes"]) == 1 and st["strokes"][0]["mode"] == "brush", "brush stroke recorded")
    check(area_brushed > area_picked, "brush adds pixels (%d -> %d)" % (area_picked, area_brushed))
    press("z", ctrl=True)
    check(holds("window.samAnnotate.state().strokes.length === 0 && window.samAnnotate.maskArea() === %d" % area_picked),
          "undo removes the stroke")
    press("y", ctrl=True)
    check(holds("window.samAnnotate.state().strokes.length === 1"), "redo brings it back")
    # Eraser: a small cut through the brushed stroke.
    press("e")
    wait_js("document.getElementById('tool-eraser').classList.contains('active')", 5, "the eraser tool")
    ex, ey = at(70, 315)
    drag((ex, ey), (ex + 5, ey + 5), 1)
    holds("window.samAnnotate.state().strokes.length === 2")
    area_erased = mask_area()
    check(area_erased < area_brushed, "eraser removes pixels")
    press("p")

    # Accept: saved, listed, mask reset.
    press(Keys.ENTER)
    wait_js("window.samAnnotate.annotations().length === 1", 10, "the accepted mask")
    saved = js("return window.samAnnotate.annotations();")[0]
    check(saved["area"] == area_erased, "accepted mask saved as drawn (%d px)" % saved["area"])
    check(("saved annotation #%d" % saved["id"]) in js("return document.getElementById('message').textContent;"),
          "accept acknowledged on the page")
    check(len(state()["points"]) == 0, "a fresh mask after accept")
    via_api = api("/api/images/01_photo.jpg")
    check(len(via_api["annotations"]) == 1 and len(via_api["annotations"][0]["clicks"]["strokes"]) == 2,
          "clicks and strokes stored with the mask")

    # Reload: the annotation is still there.
    collect_console()
    driver.refresh()
    ready("01_photo.jpg")
    after_reload = js("return window.samAnnotate.annotations();")
    check(len(after_reload) == 1 and after_reload[0]["id"] == saved["id"], "annotation kept after reload")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#ann-list li")) == 1, "annotation listed after reload")

    # Page-level latency: click -> mask drawn, 20 single clicks.
    lat = []
    for i in range(20):
        press(Keys.ESCAPE)
        wait_js("window.samAnnotate.state().points.length === 0", 10, "a cleared mask")
        click(at(40 + (i * 97) % 560, 40 + (i * 53) % 400))
        wait_js("window.samAnnotate.state().points.length === 1", 10, "the click")
        idle()
        lat.append(js("return window.samAnnotate.latency();"))
    lat.sort()
    print("# page click -> mask (ms): p50 %.1f, max %.1f" % (lat[10], lat[19]), flush=True)
    check(lat[10] > 0, "latency measured on the page")
    press(Keys.ESCAPE)

    # Export from the page: COCO and SA-1B downloads.
    name, text = download("#export-coco", "COCO")
    coco = json.loads(text)
    check(name == "annotations_coco.json", "COCO download named (%s)" % name)
    check(len(coco["images"]) == 3 and len(coco["annotations"]) == 1 and
          coco["annotations"][0]["segmentation"]["counts"] == via_api["annotations"][0]["segmentation"]["counts"],
          "COCO export holds the mask")
    name, text = download("#export-sa1b-image", "SA-1B")
    sa = json.loads(text)
    check(name == "01_photo.json" and len(sa["annotations"]) == 1, "SA-1B export of this image (%s)" % name)

    # Next unannotated image; a box there.
    press("n")
    ready("02_shapes.bmp")
    check(True, "N jumps to the next unannotated image")
    embedding_ready()
    drag(at(170, 50), at(280, 190), 8)
    wait_js("window.samAnnotate.state().box !== null", 10, "the box")
    idle()
    st = state()
    check(st["box"] is not None and len(st["points"]) == 0 and st["box"][2] - st["box"][0] > 90, "drag draws a box")
    check(mask_area() > 0, "box gives a mask")
    press("a")
    wait_js("window.samAnnotate.annotations().length === 1", 10, "the accepted box mask")
    check(True, "A accepts too")

    # Back to the first image: delete its annotation.
    press(Keys.ARROW_LEFT)
    ready("01_photo.jpg")
    driver.find_element(By.CSS_SELECTOR, "#ann-list li").click()
    wait_js("!document.getElementById('btn-delete').disabled", 5, "an annotation selected")
    press(Keys.DELETE)
    wait_js("window.samAnnotate.annotations().length === 0", 10, "the deletion")
    check(len(api("/api/images/01_photo.jpg")["annotations"]) == 0, "Delete removes the selected annotation")

    # A screenshot: one accepted mask and one in progress with its candidates.
    if ARGS.screenshot:
        click(at(407.66, 129.5))
        idle()
        press(Keys.ENTER)
        wait_js("window.samAnnotate.annotations().length === 1", 10, "the accepted mask")
        click(at(345, 176))  # the balloon: three nested candidates, the smallest picked
        wait_js("window.samAnnotate.state().points.length === 1", 10, "the click")
        idle()
        press("1")
        wait_js("window.samAnnotate.state().candidate === 0", 5, "the first candidate")
        a = mouse()
        move(a, (5, 5))
        a.perform()
        # Drawn: the candidate's thumbnails and the overlay are painted synchronously on the state
        # change; one animation frame more lets the compositor put them on screen.
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "requestAnimationFrame(() => requestAnimationFrame(() => done(true)));")
        path = os.path.abspath(ARGS.screenshot)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        check(driver.save_screenshot(path), "screenshot saved")
        print("# screenshot: " + path, flush=True)
    collect_console()
    check(len(console_errors) == 0,
          "no errors in the browser console" + (": " + " | ".join(console_errors) if console_errors else ""))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure is one failed check, with its trace
        failed += 1
        print("not ok - %s: %s" % (type(e).__name__, e), flush=True)
        for line in traceback.format_exc().rstrip().splitlines():
            print("# " + line)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(0 if failed == 0 else 1)
