"""What a user's model returns decides the export: refused in one line before any file, or a binary model's two
classes (issue 34, parts 1 and 2)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import assert_one_line_error, run_cli
from user_models import binary_net

from edgeseg.bundle import Bundle
from edgeseg.export.artifacts import sample_frames
from edgeseg.runtime.tensors import frames_to_input


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("user_models:detection_net", ("detections", "one dict per image: boxes, labels, scores, masks", "maskrcnn")),
        ("user_models:classifier_net", ("a tensor 1x10", "classifier", "N x C x H x W")),
    ],
)
def test_models_edgeseg_cannot_serve_are_refused_in_one_line_and_leave_nothing(spec, fragments, tmp_path, capfd):
    code = run_cli(capfd, "export", spec, "-o", tmp_path / "bundle", "--size", "64x64")
    code, out, err = code
    assert_one_line_error(code, err, *fragments)
    assert "onnxruntime" not in out + err.lower() and "Warning" not in out + err
    assert list(tmp_path.iterdir()) == []  # no bundle, no scratch directory


def test_a_map_far_smaller_than_the_frame_says_upsample(tmp_path, capsys):
    from edgeseg.errors import EdgesegError
    from edgeseg.export.outputs import classify_output

    with pytest.raises(EdgesegError, match="upsample the logits"):
        classify_output("m:f", torch.zeros(1, 4, 16, 16), (64, 64))
    with pytest.raises(EdgesegError, match="integer values"):
        classify_output("m:f", torch.zeros(1, 64, 64, dtype=torch.long), (64, 64))
    assert classify_output("m:f", {"out": torch.zeros(1, 1, 64, 64)}, (64, 64)).kind == "binary"
    assert classify_output("m:f", (torch.zeros(1, 5, 64, 64), None), (64, 64)).channels == 5


def torch_foreground(model, frames: np.ndarray, mean, std) -> np.ndarray:
    rgb = torch.from_numpy(frames[..., ::-1].copy()).float().permute(0, 3, 1, 2) / 255.0
    normalised = (rgb - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(normalised)
    return (torch.sigmoid(logits.reshape(len(frames), *frames.shape[1:3])) > 0.5).numpy()


@pytest.mark.parametrize("squeeze", [False, True])
def test_a_one_channel_model_exports_as_two_classes_matching_sigmoid_above_one_half(squeeze, tmp_path, capsys):
    out = tmp_path / "binary"
    args = ["--arg", "squeeze=true"] if squeeze else []
    code, stdout, err = run_cli(capsys, "export", "user_models:binary_net", "-o", out, "--size", "64x64", *args)
    assert code == 0, err
    bundle = Bundle.load(out)
    assert [c.name for c in bundle.classes] == ["background", "foreground"]
    assert bundle.manifest["model"]["binary"]["threshold"] == 0.5
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    frames = sample_frames((64, 64), count=4)
    maps = session.run(None, {session.get_inputs()[0].name: frames_to_input(list(frames), bundle.input)[:1]})[0]
    expected = torch_foreground(binary_net(squeeze), frames[:1], bundle.input.mean, bundle.input.std)
    assert maps.shape == (1, 64, 64) and maps.dtype == np.uint8
    assert 0.05 < expected.mean() < 0.95  # both classes are on the frame
    assert (maps.astype(bool) == expected).mean() >= 0.999


def test_threshold_moves_the_foreground_and_kvasir_names_it(tmp_path, capsys):
    out = tmp_path / "kvasir"
    code, _, err = run_cli(
        capsys, "export", "user_models:binary_net", "-o", out, "--size", "64x64", "--classes", "kvasir",
        "--threshold", "0.6",
    )  # fmt: skip
    assert code == 0, err
    bundle = Bundle.load(out)
    assert [c.name for c in bundle.classes] == ["background", "polyp"]
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    frames = sample_frames((64, 64), count=1)
    maps = session.run(None, {session.get_inputs()[0].name: frames_to_input(list(frames), bundle.input)})[0]
    rgb = torch.from_numpy(frames[..., ::-1].copy()).float().permute(0, 3, 1, 2) / 255.0
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (bundle.input.mean, bundle.input.std))
    with torch.no_grad():
        probability = torch.sigmoid(binary_net()((rgb - mean) / std))[:, 0].numpy()
    assert (maps.astype(bool) == (probability > 0.6)).mean() >= 0.999


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--classes", "3"], ("one channel", "3 class names", "--classes kvasir")),
        (["--threshold", "1.5"], ("--threshold", "between 0 and 1", "not 1.5")),
    ],
)
def test_binary_models_refuse_what_does_not_fit(args, fragments, tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "user_models:binary_net", "-o", tmp_path / "b", "--size", "64x64", *args)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "b").exists()


def test_threshold_on_a_multi_class_model_is_refused(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "export", "user_models:tiny_net", "-o", tmp_path / "b", "--size", "32x32", "--threshold", "0.3"
    )
    assert_one_line_error(code, err, "--threshold is for binary models", "drop --threshold")


def test_a_binary_bundle_calibrates_evaluates_with_dice_overlays_and_deploys(tmp_path, capsys):
    import json

    import cv2
    import datasets

    root = tmp_path / "kv"
    truths = datasets.kvasir(root)
    for index in range(2, 12):  # calibrate wants a few frames
        cv2.imwrite(str(root / "images" / f"extra{index}.jpg"), datasets.image(index))
        cv2.imwrite(str(root / "masks" / f"extra{index}.jpg"), np.full((48, 64, 3), 255 * (index % 2), np.uint8))
    bundle = tmp_path / "b"
    size = f"{datasets.H}x{datasets.W}"
    code, _, err = run_cli(capsys, "export", "user_models:binary_net", "-o", bundle, "--size", size, "--classes",
                           "kvasir")  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli(capsys, "calibrate", bundle, "--data", f"kvasir://{root}", "--count", "6", "--eval-count",
                           "4", "--precision", "fp16")  # fmt: skip
    assert code == 0, err
    assert Bundle.load(bundle).select("onnx", "fp16").extra["fidelity"]["agreement"] >= 0.99

    code, stdout, err = run_cli(capsys, "eval", bundle, "--data", f"kvasir://{root}", "--precision", "fp32",
                                "--frames", "2", "--json", tmp_path / "e.json")  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    session = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    images = [cv2.imread(str(root / "images" / f"cju0{i}.jpg")) for i in range(2)]
    inputs = frames_to_input(images, Bundle.load(bundle).input)
    found = np.concatenate([session.run(None, {session.get_inputs()[0].name: inputs[i : i + 1]})[0] for i in (0, 1)])
    truth = np.stack(truths).astype(bool)
    overlap = (found.astype(bool) & truth).sum()
    dice = 2 * overlap / (found.astype(bool).sum() + truth.sum())
    assert result["foreground"]["dice"] == pytest.approx(dice, abs=1e-6)
    assert result["foreground"]["iou"] == pytest.approx(overlap / (found.astype(bool) | truth).sum(), abs=1e-6)
    assert f"polyp: Dice {dice:.4f}" in stdout

    code, _, err = run_cli(capsys, "run", bundle, "-i", str(root / "images"), "-o", tmp_path / "overlays",
                           "--precision", "fp32")  # fmt: skip
    assert code == 0, err
    assert len(list((tmp_path / "overlays").iterdir())) == 12
    code, _, err = run_cli(capsys, "deploy", bundle, "--target", "triton", "-o", tmp_path / "triton")
    assert code == 0, err
    assert next((tmp_path / "triton").rglob("labels.txt")).read_text().split() == ["background", "polyp"]
