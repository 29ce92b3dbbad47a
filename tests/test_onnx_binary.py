"""A one-channel .onnx brought directly is a binary bundle, as a one-channel PyTorch model is: two classes, the
class map its sigmoid > threshold, --threshold and --classes as for PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import assert_one_line_error, run_cli
from onnx import TensorProto, helper, numpy_helper

from edgeseg.bundle import Bundle
from edgeseg.calibration.fp16 import convert_to_fp16
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.tensors import output_to_class_maps


def one_channel_onnx(path, channels: int = 1, size: int = 16) -> np.ndarray:
    """A float NCHW graph: one 1x1 Conv to `channels` logits at the input's size. Returns its weights."""
    rng = np.random.default_rng(7)
    weight = rng.normal(size=(channels, 3, 1, 1)).astype(np.float32)
    bias = np.full(channels, -0.2, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["mask"], name="head")],
        "one_channel",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, channels, size, size])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return weight


def sigmoid_mask(image: np.ndarray, weight: np.ndarray, threshold: float) -> np.ndarray:
    logit = np.einsum("nchw,c->nhw", image, weight[0, :, 0, 0]) - 0.2
    return (1 / (1 + np.exp(-logit)) > threshold).astype(np.uint8)


@pytest.mark.parametrize("threshold", [None, 0.7])
def test_a_one_channel_onnx_imports_as_two_classes_whose_map_is_its_sigmoid_above_the_threshold(tmp_path, capsys,
                                                                                                threshold):  # fmt: skip
    weight = one_channel_onnx(tmp_path / "mask.onnx")
    flags = ["--threshold", str(threshold)] if threshold else []
    code, _, err = run_cli(capsys, "export", tmp_path / "mask.onnx", "-o", tmp_path / "b", *flags)
    assert code == 0, err
    bundle = Bundle.load(tmp_path / "b")
    assert [c.name for c in bundle.classes] == ["background", "foreground"]
    assert bundle.output.kind == "logits" and bundle.manifest["model"]["binary"]["threshold"] == (threshold or 0.5)
    image = np.random.default_rng(0).normal(scale=3.0, size=(1, 3, 16, 16)).astype(np.float32)
    with open_backend(bundle, "onnxruntime", "fp32") as backend:
        logits = backend.infer(image)
    assert logits.shape == (1, 2, 16, 16)
    class_map = output_to_class_maps(logits, bundle.output)
    expected = sigmoid_mask(image, weight, threshold or 0.5)
    assert 0 < expected.mean() < 1  # both classes present: the check can fail
    np.testing.assert_array_equal(class_map, expected)
    # Its FP16 form loads and agrees: the threshold channel (a ConstantOfShape) turns float16 with the logits beside
    # it (left float32, ONNX Runtime refused the Concat of smp's Unet, Segformer and the imported head alike).
    import onnxruntime

    fp16 = convert_to_fp16(onnx.load(str(tmp_path / "b" / "model.onnx")))
    session = onnxruntime.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"])
    half = session.run(None, {"image": image})[0]
    assert (output_to_class_maps(half, bundle.output) == expected).mean() > 0.99


def test_a_one_channel_onnx_takes_two_class_names_and_a_multi_channel_one_refuses_threshold(tmp_path, capsys):
    one_channel_onnx(tmp_path / "mask.onnx")
    code, _, err = run_cli(capsys, "export", tmp_path / "mask.onnx", "-o", tmp_path / "k", "--classes", "kvasir")
    assert code == 0, err
    assert len(json.loads((tmp_path / "k" / "manifest.json").read_text())["classes"]) == 2
    code, _, err = run_cli(capsys, "export", tmp_path / "mask.onnx", "-o", tmp_path / "c", "--classes", "3")
    assert_one_line_error(code, err, "returns one channel", "give two")
    one_channel_onnx(tmp_path / "three.onnx", channels=3)
    code, _, err = run_cli(capsys, "export", tmp_path / "three.onnx", "-o", tmp_path / "t", "--threshold", "0.6")
    assert_one_line_error(code, err, "--threshold is for binary models")
    assert not (tmp_path / "t").exists()
