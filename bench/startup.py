"""Start-up costs, each timed in fresh processes.

    python bench/startup.py [--repeat 5] [--json OUT]

Three measurements, repeated ``--repeat`` times and interleaved (toy, import, OCR, toy, ...):

* ``fastnn toy``: the console script installed beside ``sys.executable``, whole process;
* ``python -c "import fastnn.functional"``: the import of the public API (and the compiled core);
* a first ``fastnn.ocr.read_text(image, model)`` call in a fresh process, on a synthetic
  4032x3024 grayscale page (rows of dark pen strokes on slightly uneven paper, saved as PNG)
  with an untrained ``MLP([1024, 256, 36], ["relu", "softmax"], dtype="float32")`` saved to an
  ``.npz`` and read back with ``MLP.load``.  The child reports the in-process times of the
  imports, of ``MLP.load``, of ``fastnn.ocr.load_image(path)`` and of the ``read_text`` call on
  the loaded array; the parent times the whole process.

The parent reports the median and the min/max of every time.  Children run with a temporary
directory as working directory, so that the installed fastnn is imported, not the source tree.
This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PAGE_SHAPE = (3024, 4032)  # rows, columns: a 12 MP phone photo in landscape
SCRIPT = os.path.abspath(__file__)

#: The child of the OCR measurement: argv = image path, model path; prints JSON with its own times.
OCR_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastnn.ocr
from fastnn.models import MLP
t1 = time.perf_counter()
model = MLP.load(sys.argv[2])
t2 = time.perf_counter()
image = fastnn.ocr.load_image(sys.argv[1])
t3 = time.perf_counter()
result = fastnn.ocr.read_text(image, model)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "model_load_s": t2 - t1, "load_image_s": t3 - t2, "read_text_s": t4 - t3,
                  "image_shape": list(image.shape), "image_dtype": str(image.dtype), "n_chars": len(result.chars),
                  "n_lines": len(result.lines)}))
"""


def make_page(path, seed=0):
    """Write a synthetic 4032x3024 grayscale page: rows of handwriting-like dark strokes, as PNG."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    h, w = PAGE_SHAPE
    # paper: light gray, brighter towards the middle (uneven lighting), a little sensor noise
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paper = 215 + 25 * np.exp(-(((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2) * 3)
    paper += rng.normal(0, 3, size=paper.shape).astype(np.float32)
    img = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8), mode="L")
    draw = ImageDraw.Draw(img)
    char_h, char_w, gap = 150, 110, 45
    n_chars = 0
    for top in range(300, h - 400, 330):  # text lines
        x = 250
        while x < w - 300:
            for _ in range(int(rng.integers(1, 7))):  # a word of 1-6 characters
                if x > w - 300:
                    break
                ink = int(rng.integers(20, 70))
                y0 = top + int(rng.integers(-12, 12))
                for _ in range(int(rng.integers(1, 3))):  # 1-2 pen strokes of 2-4 segments per character
                    p = [(x + rng.uniform(0, char_w), y0 + rng.uniform(0, char_h))
                         for _ in range(int(rng.integers(3, 6)))]
                    draw.line(p, fill=ink, width=int(rng.integers(10, 16)), joint="curve")
                if rng.random() < 0.3:  # a round part
                    draw.ellipse([x + 10, y0 + 20, x + char_w - 10, y0 + char_h - 10], outline=ink, width=12)
                x += char_w + gap
                n_chars += 1
            x += int(rng.integers(120, 220))  # word gap
    img.save(path)
    return n_chars


def _timed(cmd, workdir):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stderr}")
    return wall, proc.stdout


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="fresh processes per measurement (5)")
    ap.add_argument("--json", metavar="OUT", help="also write every measurement to this JSON file")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be positive")

    bindir = os.path.dirname(sys.executable)
    console = shutil.which("fastnn", path=bindir) or os.path.join(bindir, "fastnn")
    if not os.path.exists(console):
        ap.error(f"no fastnn console script beside {sys.executable}; install fastnn into this environment")
    load_start = _load()
    with tempfile.TemporaryDirectory(prefix="fastnn-startup-") as workdir:
        # the page here; the model in a child, so that the installed fastnn writes it
        page = os.path.join(workdir, "page.png")
        model_path = os.path.join(workdir, "ocr-mlp.npz")
        t0 = time.perf_counter()
        n_drawn = make_page(page)
        t_page = time.perf_counter() - t0
        _, where = _timed([sys.executable, "-c",
                           "import sys, fastnn; from fastnn.models import MLP; "
                           "MLP([1024, 256, 36], ['relu', 'softmax'], dtype='float32', seed=0).save(sys.argv[1]); "
                           "print(fastnn.__file__)", model_path], workdir)
        print(f"python {sys.executable}; fastnn from {os.path.dirname(where.strip())}")
        print(f"synthetic page {PAGE_SHAPE[1]}x{PAGE_SHAPE[0]} grayscale PNG with {n_drawn} drawn characters "
              f"({os.path.getsize(page) / 1e6:.1f} MB, made in {t_page:.1f} s); model {model_path}")
        print(f"{os.cpu_count()} cores, load average (1, 5, 15 min) at start: {load_start}", flush=True)

        cases = {
            "fastnn toy (whole process)": [console, "toy"],
            "import fastnn.functional (whole process)": [sys.executable, "-c", "import fastnn.functional"],
            "read_text first call (whole process)": [sys.executable, "-c", OCR_CHILD, page, model_path],
        }
        walls = {name: [] for name in cases}
        inner = []
        for i in range(args.repeat):
            for name, cmd in cases.items():
                wall, out = _timed(cmd, workdir)
                walls[name].append(wall)
                if cmd[-2:] == [page, model_path]:
                    inner.append(json.loads(out.strip().splitlines()[-1]))
            print(f"  repeat {i + 1}/{args.repeat} done (load {_load()})", flush=True)
    load_end = _load()

    rows = [(name, ts) for name, ts in walls.items()]
    for key, label in (("import_s", "  in-process: import fastnn.ocr, fastnn.models"),
                       ("model_load_s", "  in-process: MLP.load(npz)"),
                       ("load_image_s", "  in-process: load_image(png)"),
                       ("read_text_s", "  in-process: read_text(image, model)")):
        rows.append((label, [r[key] for r in inner]))
    print()
    width = max(len(n) for n, _ in rows)
    print(f"{'seconds, ' + str(args.repeat) + ' fresh processes each':<{width}}  {'median':>8} {'min':>8} {'max':>8}")
    for name, ts in rows:
        print(f"{name:<{width}}  {statistics.median(ts):8.3f} {min(ts):8.3f} {max(ts):8.3f}")
    if inner:
        r = inner[0]
        print(f"read_text found {r['n_chars']} characters in {r['n_lines']} lines "
              f"(image {r['image_shape']} {r['image_dtype']})")
    print(f"load average (1, 5, 15 min): {load_start} at start, {load_end} at end")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"executable": sys.executable, "repeat": args.repeat, "cpu_count": os.cpu_count(),
                       "load_start": load_start, "load_end": load_end, "page_shape": PAGE_SHAPE,
                       "drawn_chars": n_drawn, "wall_s": walls, "read_text_child": inner}, fh, indent=1)
        print(f"measurements written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
