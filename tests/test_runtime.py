"""The lean runtime: imports, tensors, overlay, sources and sinks."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from edgeseg.bundle import Bundle, ClassInfo
from edgeseg.errors import EdgesegError
from edgeseg.runtime.overlay import Overlay
from edgeseg.runtime.pipeline import END, Slot
from edgeseg.runtime.sinks import open_sink
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import frames_to_input, output_to_class_maps

CLASSES = [ClassInfo("a", (255, 0, 0)), ClassInfo("b", (0, 255, 0)), ClassInfo("c", (0, 0, 255))]


def test_runtime_imports_neither_torch_nor_onnx():
    code = (
        "import sys, edgeseg.runtime, edgeseg.runtime.run; "
        "print(sorted(m for m in ('torch', 'onnx', 'tensorrt') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_unfused_preprocessing_is_rgb_normalised_nchw(tiny_bundle):
    contract = dataclasses.replace(
        Bundle.load(tiny_bundle).input, fused_preprocess=False, layout="NCHW", color_order="RGB"
    )
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    tensor = frames_to_input([frame], contract)
    rgb = frame[..., ::-1].astype(np.float32) / 255.0
    expected = ((rgb - np.array(contract.mean)) / np.array(contract.std)).transpose(2, 0, 1)[None]
    assert tensor.dtype == np.float32 and tensor.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(tensor, expected, atol=1e-5)


def test_fused_preprocessing_resizes_and_keeps_uint8_bgr(tiny_bundle):
    contract = Bundle.load(tiny_bundle).input
    frame = np.zeros((128, 256, 3), np.uint8)
    frame[..., 0] = 200  # blue
    batch = frames_to_input([frame, frame], contract)
    assert batch.dtype == np.uint8 and batch.shape == (2, 64, 64, 3)
    assert (batch[..., 0] == 200).all() and (batch[..., 1:] == 0).all()


def test_logits_become_class_maps(tiny_bundle):
    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 2, 0, 0] = logits[0, 1, 1, 1] = 5
    contract = Bundle.load(tiny_bundle).output
    maps = output_to_class_maps(logits, dataclasses.replace(contract, kind="logits"))
    assert maps.tolist() == [[[2, 0], [0, 1]]]


def checker_map() -> np.ndarray:
    class_map = np.zeros((4, 4), np.uint8)
    class_map[:, 2:] = 1
    class_map[2:, :] = 2
    return class_map


def test_point_filter_is_nearest_neighbour_colour():
    overlay = Overlay(CLASSES, alpha=1.0, filter_mode="point", visualize="mask", legend=False)
    mask = overlay.render(np.zeros((40, 40, 3), np.uint8), checker_map())
    expected = overlay.palette[cv2.resize(checker_map(), (40, 40), interpolation=cv2.INTER_NEAREST)]
    assert np.array_equal(mask, expected)
    assert set(map(tuple, mask.reshape(-1, 3))) == {(0, 0, 255), (0, 255, 0), (255, 0, 0)}  # BGR of the three classes


def test_linear_filter_blends_colours_only_at_boundaries():
    overlay = Overlay(CLASSES, alpha=1.0, filter_mode="linear", visualize="mask", legend=False)
    mask = overlay.render(np.zeros((40, 40, 3), np.uint8), checker_map())
    assert tuple(mask[2, 2]) == (0, 0, 255)  # inside class a: its pure colour
    assert len(set(map(tuple, mask.reshape(-1, 3)))) > 3  # mixtures along the edges


def test_linear_filter_on_logits_takes_argmax_at_frame_resolution():
    overlay = Overlay(CLASSES, alpha=1.0, filter_mode="linear", visualize="mask", legend=False)
    logits = np.random.default_rng(0).normal(size=(3, 8, 8)).astype(np.float32)
    mask = overlay.render(np.zeros((32, 32, 3), np.uint8), logits.argmax(0).astype(np.uint8), logits)
    upsampled = cv2.resize(logits.transpose(1, 2, 0), (32, 32), interpolation=cv2.INTER_LINEAR).argmax(2)
    assert np.array_equal(mask, overlay.palette[upsampled])


def test_overlay_alpha_blend_and_side_by_side():
    frame = np.full((20, 20, 3), 100, np.uint8)
    class_map = np.zeros((5, 5), np.uint8)
    blended = Overlay(CLASSES, alpha=0.25, filter_mode="point", legend=False).render(frame, class_map)
    assert tuple(blended[10, 10]) == (75, 75, 139)  # 0.75 * 100 + 0.25 * (0, 0, 255)
    both = Overlay(CLASSES, visualize="both", legend=False).render(frame, class_map)
    assert both.shape == (20, 40, 3)


def test_legend_and_readout_are_drawn():
    frame = np.zeros((240, 320, 3), np.uint8)
    plain = Overlay(CLASSES, alpha=0.0, legend=False).render(frame, np.zeros((8, 8), np.uint8))
    legend = Overlay(CLASSES, alpha=0.0, legend=True).render(frame, np.zeros((8, 8), np.uint8), readout="30.0 FPS")
    assert plain.max() == 0
    assert legend[-60:, -80:].max() > 0 and legend[:30, :100].max() > 0  # legend bottom-right, read-out top-left


def test_latest_frame_keeps_only_the_newest_and_counts_drops():
    slot = Slot(live=True, ready=threading.Condition(), abort=threading.Event())
    for item in ("f1", "f2", "f3"):
        slot.put(item)
    slot.put(END)
    with slot.ready:
        assert slot.take() == "f3" and slot.dropped == 2
        assert slot.take() is None and slot.finished  # ended: nothing more comes


# -- sources ---------------------------------------------------------------------------------------
def test_synthetic_source_is_deterministic_and_labelled():
    first = list(open_source("synthetic://medical?seed=3&size=96x64&frames=5"))
    again = list(open_source("synthetic://medical?seed=3&size=96x64&frames=5"))
    assert len(first) == 5 and first[0].image.shape == (64, 96, 3) and first[0].label.shape == (64, 96)
    assert all(np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label) for a, b in zip(first, again))
    assert not np.array_equal(first[0].image, first[4].image)  # it moves


def test_image_folder_is_sorted_and_skips_unreadable_files(tmp_path):
    for name, value in (("b.png", 20), ("a.jpg", 10), ("c.png", 30)):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), value, np.uint8))
    (tmp_path / "d.png").write_bytes(b"not a png")
    source = open_source(str(tmp_path))
    values = [int(f.image[0, 0, 0]) for f in source]
    assert values == [10, 20, 30]
    assert source.bad_frames == 1


@pytest.mark.parametrize(
    "uri,fragment",
    [
        ("synthetic://forest", "unknown synthetic scene 'forest'"),
        ("synthetic://driving?speed=3", "unknown option(s) speed"),
        ("synthetic://driving?size=big", "size is WxH"),
        ("ftp://host/video", "unknown source scheme 'ftp://'"),
        ("/dev/video97", "camera /dev/video97 does not exist"),
        ("v4l2:///dev/video98", "camera /dev/video98 does not exist"),
        ("csi://0", "csi:// cameras need"),
    ],
)
def test_bad_source_uris(uri, fragment):
    with pytest.raises(EdgesegError) as info:
        open_source(uri)
    assert fragment in str(info.value)


def test_empty_image_folder(tmp_path):
    with pytest.raises(EdgesegError, match="has no images"):
        open_source(str(tmp_path))


def test_file_that_is_not_a_video(tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"\0" * 4096)
    with pytest.raises(EdgesegError, match="cannot open .*clip.mp4"):
        open_source(str(fake))


# -- sinks -----------------------------------------------------------------------------------------
def test_output_path_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(EdgesegError, match="cannot write output"):
        open_sink(str(tmp_path / "file" / "out.mp4"))


def test_unknown_output_kind(tmp_path):
    with pytest.raises(EdgesegError, match="cannot tell what to write"):
        open_sink(str(tmp_path / "out.xyz"))
    with pytest.raises(EdgesegError, match="unknown output"):
        open_sink("gopher://x")


def test_display_without_a_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(EdgesegError, match="needs a display"):
        open_sink("display://0")
