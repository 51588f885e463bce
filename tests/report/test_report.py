"""Tests of cinemri.report: montage PNG, cine GIF, volume curves, show_case."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from cinemri.case import Case
from cinemri.clinical import LV, MYO, RV
from cinemri.report import STYLE, cine_gif, gif_size, show_case, slice_montage, volume_curves_figure
from cinemri.report._display import (
    atomic_write,
    choose_frames,
    heart_box,
    magnitude,
    mid_ventricular_slice,
    window,
)

ACDC = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "acdc" / "training" / "patient001"


def synthetic_case(s=6, t=8, h=48, w=40, spacing=(8.0, 1.8, 1.5), labelled=None, ed=0, es=3,
                   name="synth", lv_slices=None) -> Case:
    """Concentric ellipses (LV cavity inside a MYO ring) and an RV crescent, beating over t frames."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h / 2.0, w / 2.0 + 3.0
    image = np.zeros((s, t, h, w), np.complex64)
    labels = np.zeros((s, t, h, w), np.uint8)
    body = ((yy - h / 2) / (0.45 * h)) ** 2 + ((xx - w / 2) / (0.47 * w)) ** 2 < 1
    lv_slices = range(s) if lv_slices is None else lv_slices
    for si in range(s):
        for ti in range(t):
            squeeze = 0.75 + 0.25 * np.cos(2 * np.pi * ti / t)
            r_lv = 7.0 * squeeze
            d_lv = ((yy - cy) / 1.1) ** 2 + (xx - cx) ** 2
            lv = (d_lv < r_lv ** 2) if si in lv_slices else np.zeros_like(body)
            myo = (d_lv < (r_lv + 4) ** 2) & ~lv if si in lv_slices else np.zeros_like(body)
            rv = ((yy - cy) ** 2 + ((xx - cx + 11) / 1.4) ** 2 < (10 * squeeze) ** 2) & ~(d_lv < (r_lv + 5) ** 2)
            image[si, ti] = (0.3 * body + 0.7 * lv + 0.65 * rv + 0.05 * myo) * np.exp(0.4j)
            labels[si, ti][rv] = RV
            labels[si, ti][myo] = MYO
            labels[si, ti][lv] = LV
    frames = tuple(range(t)) if labelled is None else tuple(labelled)
    keep = np.zeros(t, bool)
    keep[list(frames)] = True
    labels *= keep[None, :, None, None].astype(np.uint8)
    es = None if es is None else min(es, t - 1)
    return Case(name=name, spacing=spacing, image=image, labels=labels, ed_frame=ed, es_frame=es,
                labelled_frames=frames)


def colour_pixels(rgb_image: np.ndarray, rgb, tol: int = 0) -> np.ndarray:
    """(H, W) bool: pixels within ``tol`` of ``rgb`` in every channel."""
    return np.all(np.abs(rgb_image.astype(int) - np.array(rgb)) <= tol, axis=-1)


def gif_frames(path: Path) -> list[np.ndarray]:
    with Image.open(path) as im:
        out = []
        for k in range(im.n_frames):
            im.seek(k)
            out.append(np.asarray(im.convert("RGB")))
    return out


# ---------------------------------------------------------------- montage


def test_montage_is_png_with_contour_colours_only_when_labelled(tmp_path):
    case = synthetic_case()
    out = slice_montage(case, tmp_path / "m.png")
    assert out == tmp_path / "m.png"
    with Image.open(out) as im:
        assert im.format == "PNG"
        rgb = np.asarray(im.convert("RGB"))
    for colour in STYLE.label_colours().values():
        assert colour_pixels(rgb, colour, tol=25).sum() > 50
    case.labels = None
    case.labelled_frames = ()
    with Image.open(slice_montage(case, tmp_path / "plain.png")) as im:
        plain = np.asarray(im.convert("RGB"))
    for colour in STYLE.label_colours().values():
        assert colour_pixels(plain, colour, tol=25).sum() == 0


@pytest.mark.parametrize("s, spacing", [(6, (8.0, 1.8, 1.5)), (12, (10.0, 1.0, 2.0)), (1, (8.0, 1.25, 1.25))])
def test_montage_panels_have_physical_aspect_and_all_slices(tmp_path, s, spacing):
    h, w = 48, 40
    case = synthetic_case(s=s, h=h, w=w, spacing=spacing)
    case.image = np.zeros_like(case.image)  # black panels on a white page
    case.labels = None
    with Image.open(slice_montage(case, tmp_path / "m.png")) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    black = rgb.max(axis=-1) < 10
    blobs, n = ndimage.label(black)
    boxes = [b for b in ndimage.find_objects(blobs) if (b[0].stop - b[0].start) > 40]
    assert len(boxes) == 2 * s  # one panel per slice for ED and ES
    expected = (w * spacing[2]) / (h * spacing[1])
    for b in boxes:
        ph, pw = b[0].stop - b[0].start, b[1].stop - b[1].start
        assert pw / ph == pytest.approx(expected, rel=0.05)
    assert rgb.shape[1] <= 12 * 150 + 10  # at most 12 inches at 150 dpi, however many slices


def test_montage_custom_frames_and_crop(tmp_path):
    case = synthetic_case(s=2, h=64, w=64, spacing=(8.0, 1.0, 1.0))
    box = heart_box(case, [0, 3], margin_mm=5.0)
    labelled = np.flatnonzero(case.labels[:, [0, 3]].any(axis=(0, 1, 3)))
    y0, y1, x0, x1 = box
    assert y0 <= labelled[0] - 5 + 1 and y1 >= labelled[-1] + 5  # labels plus margin inside
    assert heart_box(synthetic_case(labelled=(0,)), [5]) is None  # no labels in frame 5
    out = slice_montage(case, tmp_path / "c.png", frames=[0, 2, 5], crop_to_heart=True)
    with Image.open(out) as im:
        assert im.format == "PNG"
    with pytest.raises(ValueError, match="frames"):
        slice_montage(case, tmp_path / "bad.png", frames=[0, 8])


def test_choose_frames_rules():
    case = synthetic_case(labelled=(0, 3), ed=None, es=None)
    frames, names, note = choose_frames(case, None)
    assert frames == [0, 3] and names == ["ED", "ES"] and "not given" in note  # largest / smallest LV
    case.labels, case.labelled_frames = None, ()
    frames, names, note = choose_frames(case, None)
    assert frames == [0, 4] and "first and middle" in note
    assert choose_frames(synthetic_case(ed=2, es=5), None)[:2] == ([2, 5], ["ED", "ES"])


def test_mid_ventricular_slice():
    assert mid_ventricular_slice(synthetic_case(s=8, lv_slices=range(1, 6))) == 3
    unlabelled = synthetic_case(s=7)
    unlabelled.labels = None
    assert mid_ventricular_slice(unlabelled) == 3


# ---------------------------------------------------------------- GIF


def test_gif_frames_size_loop_and_speed(tmp_path):
    case = synthetic_case()
    out = cine_gif(case, tmp_path / "c.gif", fps=10)
    with Image.open(out) as im:
        assert im.format == "GIF"
        assert im.n_frames == 8
        assert im.info["loop"] == 0
        assert im.info["duration"] == 100
        size_hw = (im.size[1], im.size[0])
    assert size_hw == gif_size(48, 40, 1.8, 1.5)
    assert min(size_hw) >= 256
    # physical aspect: 48 x 1.8 mm tall, 40 x 1.5 mm wide
    assert size_hw[0] / size_hw[1] == pytest.approx(48 * 1.8 / (40 * 1.5), rel=0.01)


def test_gif_size_rule():
    assert gif_size(48, 40, 1.0, 1.0) == (308, 256)
    assert gif_size(512, 512, 0.5, 0.5) == (512, 512)  # big enough already: native pixels
    assert gif_size(1024, 512, 1.0, 1.0) == (768, 384)  # longer side capped at 768
    assert min(gif_size(15, 12, 2.0, 1.0)) >= 256


def test_gif_contours_only_on_labelled_frames_and_on_the_borders(tmp_path):
    case = synthetic_case(labelled=(0, 3))
    frames = gif_frames(cine_gif(case, tmp_path / "c.gif", slice_index=2))
    size_hw = frames[0].shape[:2]
    for t, rgb in enumerate(frames):
        for label, colour in STYLE.label_colours().items():
            hits = colour_pixels(rgb, colour)
            if t not in (0, 3):
                assert hits.sum() == 0, (t, label)
                continue
            assert hits.sum() > 30, (t, label)
            # every contour pixel above the legend lies on the border of the (upsampled) structure
            region = case.labels[2, t] == label if label != MYO else case.labels[2, t] >= MYO
            up = np.asarray(Image.fromarray(region.astype(np.uint8) * 255).resize(
                (size_hw[1], size_hw[0]), Image.Resampling.BILINEAR)) >= 128
            border = up ^ ndimage.binary_erosion(up)
            near = ndimage.binary_dilation(border, iterations=2)
            body = hits[: size_hw[0] - 30]  # the legend is written in the bottom 30 px
            assert np.all(near[: size_hw[0] - 30][body]), (t, label)
    no_contours = gif_frames(cine_gif(case, tmp_path / "n.gif", slice_index=2, contours=False))
    for rgb in no_contours:
        for colour in STYLE.label_colours().values():
            assert colour_pixels(rgb, colour).sum() == 0


def test_gif_window_clips_bright_outliers(tmp_path):
    case = synthetic_case(s=1, t=2)
    case.labels = None
    case.image = np.ones_like(case.image)
    case.image[0, 0, 5, 5] = 1000.0  # one hot pixel must not darken the rest
    rgb = gif_frames(cine_gif(case, tmp_path / "w.gif"))[1]
    assert np.median(rgb) >= 240
    x = np.arange(1000, dtype=np.float32)
    scaled = window(x)
    assert scaled.max() == 1.0 and scaled[500] == pytest.approx(500 / np.percentile(x, 99.5))


def test_kspace_only_case_shows_rss_of_zero_filled_kspace(tmp_path):
    case = synthetic_case(s=2, t=4)
    rng = np.random.default_rng(3)
    maps = rng.standard_normal((2, 3, 48, 40)) + 1j * rng.standard_normal((2, 3, 48, 40))
    maps /= np.sqrt((np.abs(maps) ** 2).sum(axis=1, keepdims=True))  # sum_c |S_c|^2 = 1
    coil_images = maps[:, :, None] * case.image[:, None]  # (S, C, T, H, W)
    kspace = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(coil_images, axes=(-2, -1)), norm="ortho"),
                             axes=(-2, -1)).astype(np.complex64)
    image = case.image
    case.image, case.kspace = None, kspace
    np.testing.assert_allclose(magnitude(case, [1], [0, 3]), np.abs(image[[1]][:, [0, 3]]), atol=1e-5)
    with Image.open(cine_gif(case, tmp_path / "k.gif")) as im:
        assert im.n_frames == 4
    with Image.open(slice_montage(case, tmp_path / "k.png")) as im:
        assert im.format == "PNG"


def test_single_frame_odd_size_case(tmp_path):
    case = synthetic_case(s=1, t=1, h=15, w=12, ed=None, es=None, spacing=(6.0, 2.0, 2.5))
    with Image.open(cine_gif(case, tmp_path / "one.gif")) as im:
        assert im.n_frames == 1 and min(im.size) >= 256
    with Image.open(slice_montage(case, tmp_path / "one.png")) as im:
        assert im.format == "PNG"


# ---------------------------------------------------------------- curves, show_case, writing


def test_volume_curves_figure(tmp_path):
    t = np.arange(10)
    lv = 120 - 60 * np.sin(np.pi * t / 10)
    out = volume_curves_figure({"LV": lv, "RV": lv + 10, "MYO": np.full(10, 90.0)}, 0, 5, tmp_path / "v.png",
                               reference={LV: lv + 2})
    with Image.open(out) as im:
        assert im.format == "PNG"
        rgb = np.asarray(im.convert("RGB"))
    assert colour_pixels(rgb, STYLE.curve_colours()[LV], tol=30).sum() > 100
    with pytest.raises(ValueError, match="different lengths"):
        volume_curves_figure({LV: lv, RV: lv[:5]}, 0, 5, tmp_path / "x.png")
    with pytest.raises(ValueError, match="unknown structure"):
        volume_curves_figure({"aorta": lv}, 0, 5, tmp_path / "x.png")
    with pytest.raises(ValueError, match="es_frame"):
        volume_curves_figure({LV: lv}, 0, 10, tmp_path / "x.png")
    with pytest.raises(ValueError, match="reference"):
        volume_curves_figure({LV: lv}, 0, 5, tmp_path / "x.png", reference={LV: lv[:3]})


def test_show_case_writes_named_files_and_no_temporaries(tmp_path):
    full = synthetic_case(name="patient 7/ed")
    paths = show_case(full, tmp_path / "out")
    assert [p.name for p in paths] == ["patient_7_ed_montage.png", "patient_7_ed_cine.gif",
                                       "patient_7_ed_volumes.png"]
    partial = synthetic_case(name="p2", labelled=(0, 3))
    assert [p.name for p in show_case(partial, tmp_path / "out", crop_to_heart=True)] == [
        "p2_montage.png", "p2_cine.gif"]
    ed_es_only = synthetic_case(name="p3", t=2)  # every frame labelled, but not a cine curve
    assert len(show_case(ed_es_only, tmp_path / "out3")) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [p.name for p in paths] + ["p2_montage.png", "p2_cine.gif"])


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "f.png"
    target.write_bytes(b"old")

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]
    with pytest.raises(ValueError, match="folder"):
        atomic_write(tmp_path, broken)


def test_bad_inputs_raise_value_error(tmp_path):
    labels_only = synthetic_case(s=1, t=2)
    labels_only.image = None
    for call in (lambda: slice_montage(labels_only, tmp_path / "a.png"),
                 lambda: cine_gif(labels_only, tmp_path / "a.gif"),
                 lambda: show_case(labels_only, tmp_path)):
        with pytest.raises(ValueError, match="neither image nor kspace"):
            call()
    case = synthetic_case(s=2, t=3)
    with pytest.raises(ValueError, match="slice_index"):
        cine_gif(case, tmp_path / "a.gif", slice_index=2)
    with pytest.raises(ValueError, match="fps"):
        cine_gif(case, tmp_path / "a.gif", fps=0)
    case.labelled_frames = (0, 7)
    with pytest.raises(ValueError, match="labelled_frames"):
        cine_gif(case, tmp_path / "a.gif")
    case.labels = case.labels[:, :2]
    with pytest.raises(ValueError, match="labels shape"):
        slice_montage(case, tmp_path / "a.png")
    assert not any(tmp_path.iterdir())


def test_backend_untouched_and_real_or_synthetic_case(tmp_path):
    backend = matplotlib.rcParams["backend"]
    ed, es = ACDC / "patient001_frame01.nii.gz", ACDC / "patient001_frame12.nii.gz"
    if ed.exists() and es.exists():  # real ACDC ED/ES pair when the shared data is there
        import nibabel as nib

        frames = [nib.load(p) for p in (ed, es)]
        image = np.stack([np.asarray(f.dataobj, dtype=np.float32).transpose(2, 1, 0) for f in frames], axis=1)
        labels = np.stack([np.asarray(nib.load(str(p).replace(".nii.gz", "_gt.nii.gz")).dataobj)
                           .astype(np.uint8).transpose(2, 1, 0) for p in (ed, es)], axis=1)
        zx, zy, zz = (float(z) for z in frames[0].header.get_zooms()[:3])
        case = Case(name="patient001", spacing=(zz, zy, zx), image=image.astype(np.complex64), labels=labels,
                    ed_frame=0, es_frame=1, labelled_frames=(0, 1))
    else:
        case = synthetic_case(s=10, t=2, ed=0, es=1)
    out = slice_montage(case, tmp_path / "real.png", crop_to_heart=True)
    with Image.open(out) as im:
        rgb = np.asarray(im.convert("RGB"))
    for colour in STYLE.label_colours().values():
        assert colour_pixels(rgb, colour, tol=25).sum() > 50
    assert matplotlib.rcParams["backend"] == backend


# ------------------------------------------------------------------ orientation, titles, crop


def _heart_case(rv_right: bool = False, affine=None, name: str = "c") -> Case:
    """One slice, 3 frames of 40x40: LV disc in the middle, RV blob to its left (or right) in W."""
    image = np.random.default_rng(0).random((1, 3, 40, 40)).astype(np.complex64) + 0.5
    labels = np.zeros((1, 3, 40, 40), np.uint8)
    yy, xx = np.mgrid[:40, :40]
    labels[0, :, (yy - 20) ** 2 + (xx - 20) ** 2 < 36] = 3
    rv_x = 32 if rv_right else 8
    labels[0, :, (yy - 20) ** 2 + (xx - rv_x) ** 2 < 16] = 1
    return Case(name=name, spacing=(8.0, 1.5, 1.5), image=image, labels=labels, ed_frame=0, es_frame=2,
                labelled_frames=(0, 1, 2), affine=affine)


def test_short_axis_view_puts_the_rv_on_the_viewers_left():
    from cinemri.report._display import display_orientation

    assert not display_orientation(_heart_case(rv_right=False)).flip_cols  # already on the left
    turned = display_orientation(_heart_case(rv_right=True))
    assert turned.flip_cols and not turned.transpose and "RV on the viewer's left" in turned.how
    shown = turned.apply(_heart_case(rv_right=True).labels[0, 0])
    assert np.argwhere(shown == RV)[:, 1].mean() < np.argwhere(shown == LV)[:, 1].mean()
    # with an affine: rows (H) run posterior, columns (W) run to the patient's right (RAS +x)
    affine = np.array([[0, 1.5, 0, 0], [-1.5, 0, 0, 0], [0, 0, 8.0, 0], [0, 0, 0, 1]])
    by_affine = display_orientation(_heart_case(affine=affine))
    assert (by_affine.transpose, by_affine.flip_rows, by_affine.flip_cols) == (False, False, True)
    assert "from the affine" in by_affine.how
    plain = display_orientation(Case(name="x", spacing=(8.0, 1.5, 1.5), image=np.ones((1, 2, 8, 8), np.complex64)))
    assert (plain.transpose, plain.flip_rows, plain.flip_cols) == (False, False, False) and "as stored" in plain.how


def test_narrow_montage_keeps_its_whole_title(tmp_path):
    case = _heart_case(name="a_case_with_a_rather_long_name_from_a_hospital_export_series_0042")
    path = slice_montage(case, tmp_path / "m.png")
    width_px = Image.open(path).size[0]
    title_px = len(f"{case.name} (image); contours: ground truth") * 0.075 * 150
    assert width_px >= title_px  # was two 2.2-inch panels: 660 px for a 900 px title


def test_crop_to_heart_without_labels_says_so(tmp_path, capsys):
    from cinemri.cli import main
    from cinemri.io import write_case

    case = _heart_case()
    path = write_case(Case(name="nolabels", spacing=case.spacing, image=case.image), tmp_path / "n.h5")
    assert main(["show", str(path), "--out", str(tmp_path / "fig"), "--crop-to-heart"]) == 0
    err = capsys.readouterr().err
    assert "--crop-to-heart needs labels" in err and "n.h5" in err


def test_montage_titles_name_ground_truth_and_frames_in_the_inputs_numbering(tmp_path, monkeypatch):
    import matplotlib.figure

    titles, texts = [], []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda self, t, *a, **k: titles.append(t))
    original = matplotlib.figure.Figure.text
    monkeypatch.setattr(matplotlib.figure.Figure, "text",
                        lambda self, x, y, s, *a, **k: (texts.append(s), original(self, x, y, s, *a, **k))[1])
    case = _heart_case()
    acdc_like = Case(**{**case.__dict__, "frame_base": 1, "frame_numbering": "Info.cfg numbering, 1-based"})
    slice_montage(acdc_like, tmp_path / "m.png")
    assert "slice 0 · ES frame 3" in titles  # index 2, Info.cfg's 3
    assert "contours: ground truth" in texts[0] and "frames: Info.cfg numbering, 1-based" in texts[0]
    texts.clear()
    slice_montage(case, tmp_path / "p.png", contours="predicted")
    assert "contours: predicted" in texts[0]
