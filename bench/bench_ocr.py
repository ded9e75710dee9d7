"""OCR speed: each stage of fastnn.ocr on a 4032x3024 photo, beside the coursework's bilateral-filter approach.

The pipeline's stages (load, find_letters, group_lines, crop_characters) are timed on a generated
12-megapixel page (characters from the generated set at phone-photo scale, uneven light, noise) and on
the two real pages when ../shared/data is present. The baseline is the coursework's segmentation
(skimage's denoise_bilateral on the whole image, Otsu threshold, closing, label + regionprops), timed
on the full 4032x3024 photo (one round: ~19 s on 2 cores, against ~0.6 s for the whole pipeline)
and on a 1008x756 copy.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from fastnn import ocr
from fastnn.data import generate_nist36

SHARED = Path(os.environ.get("FASTNN_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 4032x3024 RGB JPEG of 12 lines of 20 characters, written once."""
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    X, _ = generate_nist36(8, seed=1)
    glyphs = X.reshape(-1, 32, 32).transpose(0, 2, 1)
    H, W, size = 3024, 4032, 128
    page = np.ones((H, W), np.float32)
    for row in range(12):
        for col in range(20):
            g = np.kron(glyphs[rng.integers(len(glyphs))], np.ones((size // 32, size // 32)))
            y, x = 150 + row * 230, 150 + col * 185 + (60 if col % 5 == 4 else 0)
            page[y:y + size, x:x + size] = np.minimum(page[y:y + size, x:x + size], g)
    yy, xx = np.mgrid[0:H, 0:W]
    page = page * (0.6 + 0.4 * xx / W) + rng.normal(0, 0.03, page.shape).astype(np.float32)
    rgb = (np.clip(np.stack([page * 0.95, page * 0.93, page], axis=-1), 0, 1) * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("ocr") / "page.jpg"
    iio.imwrite(path, rgb, quality=90)
    return path


def _stages(path):
    image = ocr.load_image(path)
    boxes, binary = ocr.find_letters(image)
    lines = ocr.group_lines(boxes)
    return ocr.crop_characters(binary, boxes), lines


@pytest.mark.benchmark(group="ocr 4032x3024")
def bench_pipeline_photo(benchmark, photo):
    X, lines = benchmark.pedantic(_stages, args=(photo,), rounds=3, warmup_rounds=1)
    assert X.shape[0] == 240 and len(lines) == 12


@pytest.mark.benchmark(group="ocr 4032x3024 stages")
@pytest.mark.parametrize("stage", ["load", "find_letters", "group_lines", "crop"])
def bench_stage(benchmark, photo, stage):
    image = ocr.load_image(photo)
    boxes, binary = ocr.find_letters(image)
    fn = {"load": lambda: ocr.load_image(photo), "find_letters": lambda: ocr.find_letters(image),
          "group_lines": lambda: ocr.group_lines(boxes), "crop": lambda: ocr.crop_characters(binary, boxes)}[stage]
    benchmark.pedantic(fn, rounds=3, warmup_rounds=1)


def _bilateral_baseline(image):
    from skimage import color, filters, measure, morphology, restoration

    gray = color.rgb2gray(image)
    den = restoration.denoise_bilateral(gray, sigma_color=0.05, sigma_spatial=3)
    bw = den < filters.threshold_otsu(den)
    bw = morphology.closing(bw, morphology.footprint_rectangle((5, 5)))
    return [r.bbox for r in measure.regionprops(measure.label(bw)) if r.area > 50]


@pytest.mark.benchmark(group="ocr baseline")
def bench_coursework_bilateral_quarter_size(benchmark, photo):
    from skimage.transform import downscale_local_mean

    image = ocr.load_image(photo)
    small = downscale_local_mean(image, (4, 4, 1)).astype(np.float64) / 255
    benchmark.pedantic(_bilateral_baseline, args=(small,), rounds=1, warmup_rounds=0)


@pytest.mark.benchmark(group="ocr baseline")
def bench_coursework_bilateral_full_size(benchmark, photo):
    image = ocr.load_image(photo).astype(np.float64) / 255
    regions = benchmark.pedantic(_bilateral_baseline, args=(image,), rounds=1, warmup_rounds=0)
    assert len(regions) >= 240


@pytest.mark.benchmark(group="ocr real pages")
@pytest.mark.parametrize("name", ["01_list", "02_letters"])
def bench_real_page(benchmark, name):
    path = SHARED / "ocr" / f"{name}.jpg"
    if not path.exists():
        pytest.skip(f"{path} not found")
    benchmark.pedantic(_stages, args=(path,), rounds=3, warmup_rounds=1)
