"""Calibration: the calibration set, INT8 Q/DQ structure for TensorRT, CPU INT8, FP16, fidelity, bad input."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import onnx
import pytest
from conftest import TINY, assert_one_line_error, run_cli
from onnx import numpy_helper

from edgeseg.bundle import Bundle
from edgeseg.calibration.dataset import build_calibration_set, spread
from edgeseg.calibration.fp16 import convert_to_fp16, float16_leaks
from edgeseg.models.train import TrainOptions, train
from edgeseg.runtime.backends import open_backend
from edgeseg.runtime.detector import pick_backend
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import frames_to_input

DATA = "synthetic://medical?seed=4000&frames=40&size=96x64"
HELD_OUT = "synthetic://medical?seed=4100&frames=12&size=96x64"


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory):
    """A small LR-ASPP trained briefly on the medical scene (agreement on an untrained net proves nothing)."""
    root = tmp_path_factory.mktemp("calib")
    weights = root / "lraspp.pt"
    train(
        "lraspp",
        "synthetic://medical",
        weights,
        TrainOptions(
            size=(64, 96),
            epochs=2,
            steps_per_epoch=25,
            batch=4,
            lr=0.01,
            val_frames=2,
            model_options={"width": 8},
            progress=False,
        ),
    )
    from edgeseg.cli import main

    assert (
        main(
            [
                "export",
                "lraspp",
                "-o",
                str(root / "bundle"),
                "--size",
                "64x96",
                "--weights",
                str(weights),
                "--arg",
                "width=8",
            ]
        )
        == 0
    )
    return root / "bundle"


@pytest.fixture(scope="module")
def calibrated(trained_bundle, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("calibrated") / "bundle"
    shutil.copytree(trained_bundle, bundle)
    from edgeseg.cli import main

    assert (
        main(["calibrate", str(bundle), "--data", DATA, "--count", "24", "--eval-data", HELD_OUT, "--eval-count", "12"])
        == 0
    )
    return bundle


def graph(bundle, name) -> onnx.ModelProto:
    return onnx.load(str(bundle / name))


def producers(model):
    return {o: n for n in model.graph.node for o in n.output}


# -- the calibration set ----------------------------------------------------------------------------
def test_spread_covers_the_whole_source():
    assert spread(list(range(100)), 5) == [0, 25, 50, 74, 99]
    assert spread(list(range(3)), 5) == [0, 1, 2]


def test_calibration_tensors_are_exactly_the_runtime_input(trained_bundle, tmp_path):
    contract = Bundle.load(trained_bundle).input
    data = build_calibration_set(DATA, 10, 4, contract, cache_dir=None)
    frames = [f.image for f in open_source(DATA)]
    expected = np.concatenate([frames_to_input([frames[i]], contract) for i in spread(list(range(40)), 10)])
    assert data.tensors.dtype == expected.dtype and np.array_equal(data.tensors, expected)
    assert len(data.held_out.frames) == 4 and data.held_out.labels is not None and data.held_out.instances is None


def test_calibration_set_is_cached_by_content(trained_bundle, tmp_path):
    contract = Bundle.load(trained_bundle).input
    first = build_calibration_set(DATA, 8, 4, contract, cache_dir=tmp_path)
    second = build_calibration_set(DATA, 8, 4, contract, cache_dir=tmp_path)
    assert not first.cached and second.cached and first.sha256 == second.sha256
    assert np.array_equal(first.tensors, second.tensors)
    (cache,) = tmp_path.glob("calibration-*.npz")
    cache.write_bytes(b"damaged")
    assert not build_calibration_set(DATA, 8, 4, contract, cache_dir=tmp_path).cached  # a damaged cache is not trusted


# -- INT8 for TensorRT --------------------------------------------------------------------------------
def test_tensorrt_int8_graph_is_placed_the_way_tensorrt_fuses_it(calibrated):
    model = graph(calibrated, "model.int8-tensorrt.onnx")
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    by_output = producers(model)
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    quantize_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert quantize_nodes
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zero_point = initializers[node.input[2]]
            assert zero_point.dtype == np.int8 and not zero_point.any()  # symmetric int8, zero point 0
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    for conv in convs:
        assert by_output[conv.input[0]].op_type == "DequantizeLinear"  # quantized activation input
        weight_dq = by_output[conv.input[1]]
        assert weight_dq.op_type == "DequantizeLinear"
        scale = initializers[weight_dq.input[1]]
        out_channels = initializers[weight_dq.input[0]].shape[0]
        assert scale.shape == (out_channels,)  # per-channel weights
        if len(conv.input) > 2:
            assert conv.input[2] in initializers and initializers[conv.input[2]].dtype == np.float32  # float bias
    # Nothing quantized around the fused uint8 input or the argmax.
    first = next(n for n in model.graph.node if model.graph.input[0].name in n.input)
    assert first.op_type == "Cast"
    argmax = next(n for n in model.graph.node if n.op_type == "ArgMax")
    assert by_output[argmax.input[0]].op_type not in ("DequantizeLinear", "QuantizeLinear")


def test_fcn_transposed_convolutions_are_quantized_per_output_channel(tmp_path, capsys):
    bundle = tmp_path / "fcn"
    assert run_cli(capsys, "export", "fcn8s", "-o", bundle, *TINY)[0] == 0
    code, _, err = run_cli(
        capsys,
        "calibrate",
        bundle,
        "--data",
        "synthetic://driving?seed=1&frames=20&size=64x64",
        "--count",
        "8",
        "--eval-count",
        "4",
        "--precision",
        "int8",
        "--method",
        "minmax",
    )
    assert code == 0, err
    model = graph(bundle, "model.int8-tensorrt.onnx")
    by_output = producers(model)
    deconvs = [n for n in model.graph.node if n.op_type == "ConvTranspose"]
    assert deconvs
    for deconv in deconvs:
        dq = by_output[deconv.input[1]]
        assert next(a.i for a in dq.attribute if a.name == "axis") == 1  # ConvTranspose weights are [Cin, Cout, k, k]
    adds = [n for n in model.graph.node if n.op_type == "Add"]
    fused = [
        a
        for a in adds
        if all(by_output.get(i) is not None and by_output[i].op_type == "DequantizeLinear" for i in a.input)
    ]
    assert fused  # FCN's skip Adds get both inputs quantized, so TensorRT can fuse them into the Conv


@pytest.mark.parametrize("cpu_format", ["qdq", "qoperator"])
def test_unet_upsamples_in_int8_on_the_cpu_and_keeps_its_transposed_convolutions_for_tensorrt(
    tmp_path, capsys, cpu_format
):
    """ORT's CPU has no int8 ConvTranspose: the CPU artifact runs the U-Net's as 1x1 Convs + uint8 depth-to-space."""
    bundle = tmp_path / "unet"
    assert (
        run_cli(
            capsys,
            "export",
            "unet",
            "-o",
            bundle,
            "--size",
            "64x96",
            "--classes",
            "3",
            "--arg",
            "width=4",
            "--arg",
            "depth=2",
        )[0]
        == 0
    )
    code, _, err = run_cli(
        capsys,
        "calibrate",
        bundle,
        "--data",
        "synthetic://medical?seed=1&frames=20&size=96x64",
        "--count",
        "8",
        "--eval-count",
        "4",
        "--precision",
        "int8",
        "--method",
        "minmax",
        "--cpu-format",
        cpu_format,
    )
    assert code == 0, err
    assert "W:onnxruntime" not in err  # no warnings about weights the rewrite left behind
    assert sum(n.op_type == "ConvTranspose" for n in graph(bundle, "model.int8-tensorrt.onnx").graph.node) == 2
    cpu = graph(bundle, "model.int8-cpu.onnx")
    by_output, types = producers(cpu), {n.op_type for n in cpu.graph.node}
    assert "ConvTranspose" not in types
    interleaves = [
        n for n in cpu.graph.node if n.op_type == "Transpose" and list(n.attribute[0].ints) == [0, 1, 3, 2, 4, 5]
    ]
    assert len(interleaves) == 2
    for shuffle in (
        interleaves
    ):  # on quantized data: between a DQ and a Q (QDQ), or fed by a QLinearConv through the other shuffles (QOperator)
        before = by_output[shuffle.input[0]]
        while before.op_type in ("Transpose", "Reshape"):
            before = by_output[before.input[0]]
        assert before.op_type in ("DequantizeLinear", "QLinearConv")


def test_widening_narrow_int8_convs_keeps_the_class_maps(tmp_path, capsys):
    """Zero filters up to 16 (MLAS's int8 channels-last kernel), zero weights in every reader: the same pixels out."""
    import onnxruntime as ort

    from edgeseg.calibration.quantize import CPU_QDQ, CPU_QOPERATOR, TensorReader, float_boundary_nodes, quantize
    from edgeseg.export import materialize_shared_weights

    bundle = tmp_path / "unet"
    assert (
        run_cli(
            capsys,
            "export",
            "unet",
            "-o",
            bundle,
            "--size",
            "64x96",
            "--classes",
            "3",
            "--arg",
            "width=4",
            "--arg",
            "depth=2",
        )[0]
        == 0
    )
    contract = Bundle.load(bundle).input
    # The driving scene: its varied colours give an untrained net's maps several classes.
    frames = frames_to_input([f.image for f in open_source("synthetic://driving?seed=4100&frames=12&size=96x64")],
                             contract)  # fmt: skip
    model = materialize_shared_weights(graph(bundle, "model.onnx"))
    # An untrained net's argmax is one class everywhere (its bias decides): random classifier weights
    # and no bias make the maps vary.
    classifier = next(n for n in model.graph.node if "classifier" in n.name and n.op_type == "Conv")
    for name, scale in zip(classifier.input[1:], (5.0, 0.0)):
        tensor = next(t for t in model.graph.initializer if t.name == name)
        random = np.random.default_rng(0).normal(0, scale, numpy_helper.to_array(tensor).shape).astype(np.float32)
        tensor.CopyFrom(numpy_helper.from_array(random, name))
    source = tmp_path / "source.onnx"
    onnx.save(model, str(source))
    reader = TensorReader(contract.name, frames, 1)

    def class_maps(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([session.run(None, {contract.name: frame[None]})[0] for frame in frames])

    for recipe in (CPU_QDQ, CPU_QOPERATOR):
        plain, wide = tmp_path / f"{recipe.name}-plain.onnx", tmp_path / f"{recipe.name}-wide.onnx"
        ranges = tmp_path / f"ranges-{recipe.name}.json"
        assert quantize(source, plain, recipe, reader, "minmax", ranges, float_boundary_nodes(model), widen=False) == []
        widened = quantize(source, wide, recipe, reader, "minmax", ranges, float_boundary_nodes(model), widen=True)
        # Every conv with 4 or 8 filters that only feeds convolutions; not the classifier, whose channels the
        # argmax reads.
        assert len(widened) == 8 and not any("classifier" in name for name in widened)
        widened_model = graph(tmp_path, wide.name)
        initializers, nodes = (
            {t.name: t for t in widened_model.graph.initializer},
            {n.name: n for n in widened_model.graph.node},
        )
        for name in widened:
            node = nodes[name]
            weight = (
                node.input[3] if node.op_type == "QLinearConv" else producers(widened_model)[node.input[1]].input[0]
            )
            assert initializers[weight].dims[0] == 16
        expected, got = class_maps(plain), class_maps(wide)
        assert len(np.unique(expected)) > 1  # the maps hold several classes, so agreement means something
        assert np.mean(got == expected) > 0.999  # integer sums are exact; only the requantization's rounding may differ


# -- CPU INT8, FP16, fidelity -------------------------------------------------------------------------
def test_manifest_lists_every_variant_with_its_fidelity(calibrated):
    bundle = Bundle.load(calibrated)
    by_path = {a.path: a for a in bundle.artifacts}
    assert set(by_path) == {"model.onnx", "model.fp16.onnx", "model.int8-tensorrt.onnx", "model.int8-cpu.onnx"}
    calibration = bundle.manifest["calibration"]
    assert calibration["count"] == 24 and calibration["method"] == "entropy" and len(calibration["data_sha256"]) == 64
    for name in ("model.fp16.onnx", "model.int8-tensorrt.onnx", "model.int8-cpu.onnx"):
        fidelity = by_path[name].extra["fidelity"]
        assert 0.9 <= fidelity["agreement"] <= 1.0 and fidelity["frames"] == 12
        # `best` may run it exactly when it reaches the default bar (no --min-agreement was given)
        assert by_path[name].extra["accepted"] == (fidelity["agreement"] >= 0.99)
        assert "default bar of 99% agreement" in by_path[name].extra["accuracy_bar"]
        assert len(fidelity["per_class_iou_change"]) == 5 and abs(fidelity["miou_change"]) < 0.1
        for picture in fidelity["worst_frames"]:
            image = cv2.imread(str(calibrated / picture))
            assert image.shape == (64, 96 * 4, 3)  # frame | FP32 | variant | difference
            fp32_panel, variant_panel, difference = image[24:, 96:192], image[24:, 192:288], image[24:, 288:]
            marked = (difference[..., 2] > 200) & (difference[..., 1] < 60)  # red where the masks differ
            assert marked.any() == (np.abs(fp32_panel.astype(int) - variant_panel.astype(int)).max() > 60)
    assert by_path["model.fp16.onnx"].extra["fidelity"]["agreement"] >= 0.999
    cpu = by_path["model.int8-cpu.onnx"].extra
    assert cpu["chosen"] in ("cpu-qdq", "cpu-qoperator") and set(cpu["cpu_latency_ms"]) >= {"fp32", cpu["chosen"]}
    assert cpu["cpu_latency_ratio"] == pytest.approx(
        cpu["cpu_latency_ms"][cpu["chosen"]] / cpu["cpu_latency_ms"]["fp32"]
    )


def test_cpu_int8_folds_relu_into_the_convolutions(calibrated):
    """uint8 with zero point 0 clips as Relu does: a Relu left between DQ and Q costs a requantization per layer."""
    model = graph(calibrated, "model.int8-cpu.onnx")
    extra = next(a for a in Bundle.load(calibrated).artifacts if a.path == "model.int8-cpu.onnx").extra
    float_layers = set(extra["float_layers"])
    quantized = [
        n
        for n in model.graph.node
        if n.op_type in ("QLinearConv",) or (n.op_type == "Conv" and n.name not in float_layers)
    ]
    assert quantized
    by_output = producers(model)
    consumers = {i: n for n in model.graph.node for i in n.input}
    for node in model.graph.node:
        if node.op_type == "Relu":  # a Relu may remain only in a part left float
            source = by_output.get(node.input[0])
            assert not (
                source is not None
                and source.op_type == "DequantizeLinear"
                and consumers.get(node.output[0]) is not None
                and consumers[node.output[0]].op_type == "QuantizeLinear"
            )
    for node in model.graph.node:
        if node.name in extra["float_for_speed"]:
            assert node.input[1] not in by_output  # left float for speed: the weight is a plain initializer
    assert set(extra["float_for_speed"]) <= float_layers
    # The share is of the nodes the TensorRT recipe quantizes (convolutions, and this LR-ASPP's Resizes).
    convolutions = sum(n.op_type in ("Conv", "ConvTranspose") for n in graph(calibrated, "model.onnx").graph.node)
    assert extra["quantized_node_count"] > convolutions
    assert extra["float_layer_share"] == len(float_layers) / extra["quantized_node_count"]


def test_channels_last_tail_keeps_every_class_map(trained_bundle, calibrated, tmp_path):
    """The CPU artifact resizes and argmaxes channels-last (ORT's NHWC Resize kernel): same pixels out."""
    import onnxruntime as ort

    from edgeseg.calibration.cpu_form import channels_last_tail

    rewritten = tmp_path / "tail.onnx"
    model = graph(trained_bundle, "model.onnx")
    assert channels_last_tail(model)
    onnx.save(model, str(rewritten))
    argmax = next(n for n in model.graph.node if n.op_type == "ArgMax")
    assert next(a.i for a in argmax.attribute if a.name == "axis") == 3
    resize = producers(model)[argmax.input[0]]
    transpose = producers(model)[resize.input[0]]
    assert transpose.op_type == "Transpose" and list(transpose.attribute[0].ints) == [0, 2, 3, 1]
    contract = Bundle.load(trained_bundle).input
    frames = frames_to_input([f.image for f in open_source(HELD_OUT)], contract)
    original = ort.InferenceSession(str(trained_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    channels_last = ort.InferenceSession(str(rewritten), providers=["CPUExecutionProvider"])
    expected = np.concatenate([original.run(None, {contract.name: frame[None]})[0] for frame in frames])
    got = np.concatenate([channels_last.run(None, {contract.name: frame[None]})[0] for frame in frames])
    assert len(np.unique(expected)) > 1  # a trained net: the maps hold several classes
    assert got.shape == expected.shape and np.array_equal(got, expected)

    def argmax_axis(model):
        return next(
            a.i for a in next(n for n in model.graph.node if n.op_type == "ArgMax").attribute if a.name == "axis"
        )

    assert argmax_axis(graph(calibrated, "model.int8-cpu.onnx")) == 3  # calibrate rewrites the CPU artifact
    assert (
        argmax_axis(graph(calibrated, "model.int8-tensorrt.onnx")) == argmax_axis(graph(calibrated, "model.onnx")) == 1
    )  # and nothing else


def concat_graph(
    zero_points: tuple[int, int, int], scales: tuple[float, float, float] = (0.01, 0.05, 0.04)
) -> onnx.ModelProto:
    """x1, x2 -> Q/DQ each -> Concat -> Q/DQ: the QDQ pattern ONNX Runtime fuses into QLinearConcat."""
    from onnx import TensorProto, helper

    nodes, initializers = [], []
    for name, scale, zero in zip(("x1", "x2", "y"), scales, zero_points):
        initializers += [
            numpy_helper.from_array(np.array(scale, np.float32), f"{name}_scale"),
            numpy_helper.from_array(np.array(zero, np.uint8), f"{name}_zero"),
        ]
        source = "joined" if name == "y" else name
        nodes += [
            helper.make_node("QuantizeLinear", [source, f"{name}_scale", f"{name}_zero"], [f"{name}_q"]),
            helper.make_node(
                "DequantizeLinear",
                [f"{name}_q", f"{name}_scale", f"{name}_zero"],
                [f"{name}_dq" if name != "y" else "out"],
            ),
        ]
    nodes.insert(4, helper.make_node("Concat", ["x1_dq", "x2_dq"], ["joined"], axis=1))
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("x1", "x2")]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "concat",
            inputs,
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 4, 4])],
            initializers,
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    onnx.checker.check_model(model)
    return model


def test_concat_inputs_take_the_concat_scale_where_zero_points_match():
    """ORT's QLinearConcat copies inputs quantized like its output: give them its scale, keep a Relu's zero point."""
    import onnxruntime as ort

    from edgeseg.calibration.cpu_form import share_concat_scales

    x1 = np.linspace(0, 1.2, 32, dtype=np.float32).reshape(1, 2, 4, 4)
    x2 = np.linspace(0, 5.0, 32, dtype=np.float32).reshape(1, 2, 4, 4)
    model = concat_graph((0, 0, 0), (0.01, 0.05, 0.06))
    assert share_concat_scales(model) == 2
    scales = {t.name: float(numpy_helper.to_array(t)) for t in model.graph.initializer if t.name.endswith("_scale")}
    assert scales == {"x1_scale": pytest.approx(0.06), "x2_scale": pytest.approx(0.06), "y_scale": pytest.approx(0.06)}
    out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x1": x1, "x2": x2}
    )[0]
    expected = np.clip(np.round(np.concatenate([x1, x2], axis=1) / np.float32(0.06)), 0, 255) * np.float32(0.06)
    assert np.allclose(out, expected, atol=1e-6)  # each input quantized once, at the concat's scale
    mixed = concat_graph((0, 128, 0), (0.01, 0.05, 0.06))
    assert (
        share_concat_scales(mixed) == 1
    )  # x2's zero point differs from the output's, and the output cannot hold its negatives
    assert float(
        numpy_helper.to_array(next(t for t in mixed.graph.initializer if t.name == "x2_scale"))
    ) == pytest.approx(0.05)
    narrow = concat_graph((0, 0, 0), (0.01, 0.05, 0.04))
    assert share_concat_scales(narrow) == 1  # the output's [0, 10.2] would clip x2's [0, 12.75] for x2's other readers


def test_unclipped_concat_inputs_take_the_concat_quantization_when_its_range_holds_theirs():
    """An input with a non-zero zero point (no folded Relu) inside the output's range is quantized as the output."""
    import onnxruntime as ort

    from edgeseg.calibration.cpu_form import share_concat_scales

    def parameters(model):
        return {t.name: numpy_helper.to_array(t).item() for t in model.graph.initializer}

    x1 = np.linspace(0, 2.5, 32, dtype=np.float32).reshape(1, 2, 4, 4)
    x2 = np.linspace(-5.0, 7.5, 32, dtype=np.float32).reshape(1, 2, 4, 4)
    model = concat_graph((0, 100, 100), (0.01, 0.05, 0.06))  # x2 holds [-5.0, 7.75], y holds [-6.0, 9.3]
    assert share_concat_scales(model) == 1
    values = parameters(model)
    assert values["x2_scale"] == pytest.approx(0.06) and values["x2_zero"] == 100
    assert (
        values["x1_scale"] == pytest.approx(0.01) and values["x1_zero"] == 0
    )  # a Relu'd input keeps its zero point of 0
    out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x1": x1, "x2": x2}
    )[0]
    once = (np.clip(np.round(x2 / np.float32(0.06)) + 100, 0, 255) - 100) * np.float32(0.06)
    assert np.allclose(out[:, 2:], once, atol=1e-6)  # x2 rounded once, on the concat's grid
    narrow = concat_graph(
        (0, 100, 100), (0.01, 0.05, 0.04)
    )  # y holds [-4.0, 6.2]: it would clip x2 for x2's other readers
    assert share_concat_scales(narrow) == 0
    assert parameters(narrow)["x2_zero"] == 100 and parameters(narrow)["x2_scale"] == pytest.approx(0.05)


def test_upsampling_as_depth_to_space_computes_what_the_transposed_convolution_did():
    """A ConvTranspose with kernel == stride becomes a 1x1 Conv and a channels-last depth-to-space: same numbers;
    one with overlapping kernels (FCN's k=4, s=2) is left alone."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from edgeseg.calibration.cpu_form import upsample_as_depth_to_space

    rng = np.random.default_rng(0)
    nodes, initializers = [], []
    for name, kernel, stride, pads in (
        ("up2", 2, 2, [0, 0, 0, 0]),
        ("up4", 4, 4, [0, 0, 0, 0]),
        ("fcn", 4, 2, [1, 1, 1, 1]),
    ):
        initializers += [
            numpy_helper.from_array(rng.normal(size=(3, 5, kernel, kernel)).astype(np.float32), f"{name}_w"),
            numpy_helper.from_array(rng.normal(size=5).astype(np.float32), f"{name}_b"),
        ]
        nodes.append(
            helper.make_node(
                "ConvTranspose",
                ["x", f"{name}_w", f"{name}_b"],
                [name],
                name=name,
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=pads,
            )
        )
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 5, 6 * s, 7 * s])
        for name, s in (("up2", 2), ("up4", 4), ("fcn", 2))
    ]
    model = helper.make_model(
        helper.make_graph(
            nodes, "ups", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 7])], outputs, initializers
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    x = rng.normal(size=(1, 3, 6, 7)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert upsample_as_depth_to_space(model) == ["up2", "up4"]
    onnx.checker.check_model(model)
    assert [n.name for n in model.graph.node if n.op_type == "ConvTranspose"] == ["fcn"]
    assert {n.name: n.op_type for n in model.graph.node}[
        "up2"
    ] == "Conv"  # the layer keeps its name, so layer lists still apply
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for want, have in zip(expected, got):
        assert have.shape == want.shape and np.allclose(have, want, atol=1e-5)


def test_resolution_levels_group_layers_by_feature_map_size(tmp_path, capsys):
    from edgeseg.calibration.quantize import CPU_OPS, resolution_levels, stem_nodes

    bundle = tmp_path / "unet"
    assert (
        run_cli(
            capsys,
            "export",
            "unet",
            "-o",
            bundle,
            "--size",
            "64x96",
            "--classes",
            "3",
            "--arg",
            "width=4",
            "--arg",
            "depth=2",
        )[0]
        == 0
    )
    model = graph(bundle, "model.onnx")
    levels = resolution_levels(model, CPU_OPS)
    convs = [[name for name in level if name.endswith("/Conv")] for level in levels]
    # Full resolution: two encoder convs, two decoder convs, the classifier; then 1/2 and 1/4 with two each
    # (+ the decoder's two at 1/2).
    assert [len(level) for level in convs] == [5, 4, 2]
    assert all("encoders.0" in name or "decoders.0" in name or "classifier" in name for name in convs[0])
    assert all("encoders.2" in name for name in convs[2])
    # The stem (the 3-channel image's conv and its Relu) is timed in float on its own, before the levels.
    assert [name.rsplit("/", 1)[1] for name in stem_nodes(model)] == ["Conv", "Relu"]
    assert all("encoders.0.0" in name for name in stem_nodes(model))


def test_onnxruntime_backend_picks_the_cpu_int8_artifact(calibrated):
    bundle = Bundle.load(calibrated)
    assert open_backend(bundle, "onnxruntime", "int8").model_path.name == "model.int8-cpu.onnx"
    assert open_backend(bundle, "onnxruntime", "fp16").model_path.name == "model.fp16.onnx"


@pytest.mark.parametrize("ratio,expected", [(0.6, "model.int8-cpu.onnx"), (1.2, "model.onnx")])
def test_best_precision_is_the_fastest_measured(calibrated, tmp_path, ratio, expected):
    """`best` takes the CPU INT8 form only where calibrate measured it faster than FP32 on this machine."""
    bundle_dir = tmp_path / "b"
    shutil.copytree(calibrated, bundle_dir)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    cpu = next(a for a in manifest["artifacts"] if a["path"] == "model.int8-cpu.onnx")["extra"]
    cpu.update(cpu_latency_ratio=ratio, accepted=True, float_layers=[], float_for_speed=[])  # faster or not: no more
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest))
    # run's choice: the INT8 form no faster is passed over, and so is FP16 on a CPU
    assert pick_backend(Bundle.load(bundle_dir), "onnxruntime", "best").model_path.name == expected


def test_best_passes_over_a_variant_below_its_accuracy_bar_and_says_so(calibrated, tmp_path, capsys):
    bundle_dir = tmp_path / "b"
    shutil.copytree(calibrated, bundle_dir)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    for artifact in manifest["artifacts"]:
        if artifact["path"] in ("model.int8-cpu.onnx", "model.fp16.onnx"):
            artifact["extra"].update(accepted=False, accuracy_bar="--min-agreement 99.99%")
            artifact["extra"]["fidelity"]["agreement"] = 0.466
        if artifact["path"] == "model.int8-tensorrt.onnx":  # one that met its bar, whatever this machine measured
            artifact["extra"].update(accepted=True)
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert open_backend(Bundle.load(bundle_dir), "onnxruntime", "best").model_path.name == "model.onnx"
    err = capsys.readouterr().err
    assert "passes over model.int8-cpu.onnx (agreement 46.60%, below --min-agreement 99.99%)" in err
    assert "passes over model.fp16.onnx" in err
    # Named explicitly, the variant still runs: the choice is the user's, with a warning naming what it measured.
    assert open_backend(Bundle.load(bundle_dir), "onnxruntime", "int8").model_path.name == "model.int8-cpu.onnx"
    warning = [line for line in capsys.readouterr().err.splitlines() if "as asked" in line]
    assert warning == [
        "edgeseg: warning: running model.int8-cpu.onnx as asked: agreement 46.60%, below --min-agreement 99.99%"
    ]
    code, stdout, _ = run_cli(capsys, "info", bundle_dir)
    rows = {line.split()[0]: line.split()[-1] for line in stdout.splitlines() if line.startswith("model.")}
    assert rows["model.int8-cpu.onnx"] == "no" and rows["model.int8-tensorrt.onnx"] == "yes"


def test_run_and_info_with_int8(calibrated, tmp_path, capsys):
    code, stdout, err = run_cli(
        capsys, "run", calibrated, "-i", HELD_OUT, "--precision", "int8", "-o", tmp_path / "out.mp4"
    )
    assert code == 0, err
    assert "model.int8-cpu.onnx" in stdout
    code, stdout, _ = run_cli(capsys, "info", calibrated)
    assert "model.int8-tensorrt.onnx" in stdout and "agreement" in stdout


def test_fp16_keeps_io_types_even_through_a_final_resize(tmp_path, capsys):
    bundle = tmp_path / "logits"
    assert (
        run_cli(
            capsys,
            "export",
            "deeplabv3",
            "-o",
            bundle,
            *TINY,
            "--no-fuse-argmax",
        )[0]
        == 0
    )
    model = onnx.load(str(bundle / "model.onnx"))
    assert model.graph.node[-1].op_type == "Resize"  # the logits leave through a Resize
    fp16 = convert_to_fp16(model)
    assert float16_leaks(fp16) == []
    assert fp16.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    import onnxruntime as ort

    session = ort.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"frame": np.zeros((1, 64, 64, 3), np.uint8)})[0].dtype == np.float32


def test_min_agreement_keeps_sensitive_layers_in_float_and_says_so(trained_bundle, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bundle)
    code, out, err = run_cli(
        capsys,
        "calibrate",
        bundle,
        "--data",
        DATA,
        "--count",
        "16",
        "--eval-data",
        HELD_OUT,
        "--eval-count",
        "8",
        "--precision",
        "int8",
        "--method",
        "minmax",
        "--min-agreement",
        "0.9999",
    )
    assert code == 0, err
    artifact = next(a for a in Bundle.load(bundle).artifacts if a.path == "model.int8-tensorrt.onnx")
    search = artifact.extra["min_agreement_search"]
    assert search["target"] == 0.9999 and len(search["sensitivity"]) == search["layers"]
    # Every node the TensorRT recipe quantizes is a candidate, not only convolutions (this LR-ASPP: its Resizes).
    candidates = {n.name: n.op_type for n in graph(bundle, "model.onnx").graph.node if n.name in search["sensitivity"]}
    assert {"Conv", "Resize"} <= set(candidates.values()) and len(candidates) == search["layers"]
    assert artifact.extra["float_layers"]  # the most sensitive layers, listed
    assert search["met"] == (search["agreement_after"] >= 0.9999)
    assert artifact.extra["float_layer_share"] == len(artifact.extra["float_layers"]) / search["layers"]
    assert artifact.extra["quantized_node_count"] == search["layers"]
    model = graph(bundle, "model.int8-tensorrt.onnx")
    by_output = producers(model)
    for node in model.graph.node:
        if node.name in artifact.extra["float_layers"]:
            assert node.input[1] not in by_output  # left in float: the weight is a plain initializer
    if not search["met"]:
        assert "every quantized node in float" in err
    elif artifact.extra["float_layer_share"] > 0.5:  # met by staying float: the table's footer says INT8 buys nothing
        assert f"model.int8-tensorrt.onnx: INT8 buys nothing here: {len(artifact.extra['float_layers'])} of" in out


def test_min_agreement_reaches_its_target_when_the_loss_is_in_a_residual_add(tmp_path, capsys):
    """Quantizing this net's Add costs a quarter of its pixels; its convolutions cost nothing. A search over
    convolutions alone ends with every one in float and the target missed; over every quantized node, it finds the
    Add."""
    bundle = tmp_path / "bundle"
    code, _, err = run_cli(capsys, "export", "user_models:residual_add_net", "-o", bundle, "--size", "64x64")
    assert code == 0, err
    data = "synthetic://medical?seed=4000&frames=24&size=64x64"
    code, out, err = run_cli(
        capsys,
        "calibrate",
        bundle,
        "--data",
        data,
        "--count",
        "16",
        "--eval-count",
        "8",
        "--precision",
        "int8",
        "--min-agreement",
        "0.99",
    )
    assert code == 0, err
    artifact = next(a for a in Bundle.load(bundle).artifacts if a.path == "model.int8-tensorrt.onnx")
    search = artifact.extra["min_agreement_search"]
    assert search["agreement_before"] < 0.9 and search["met"] and search["agreement_after"] >= 0.99
    # The Add first, and not every node: with the same code, this 332-parameter net kept only the Add in float at the
    # last landing; on this machine's packages the head Conv after it costs 15% as well (measured 2026-12-03).
    assert artifact.extra["float_layers"][0] == "/model/Add" and len(artifact.extra["float_layers"]) < search["layers"]
    assert artifact.extra["accepted"] and artifact.extra["fidelity"]["agreement"] >= 0.99
    assert max(search["sensitivity"], key=search["sensitivity"].get) == "/model/Add"
    assert "not met" not in err


def test_the_cpu_form_gets_its_own_search_where_only_it_loses(tmp_path, capsys):
    """The CPU recipe quantizes Concat (one scale for all its inputs), TensorRT's does not: on this net only the CPU
    form misses --min-agreement, and its search finds the Concat."""
    bundle = tmp_path / "bundle"
    assert run_cli(capsys, "export", "user_models:concat_of_scales_net", "-o", bundle, "--size", "64x64")[0] == 0
    data = "synthetic://medical?seed=4000&frames=24&size=64x64"
    code, out, err = run_cli(capsys, "calibrate", bundle, "--data", data, "--count", "16", "--eval-count", "8",
                             "--precision", "int8", "--min-agreement", "0.99")  # fmt: skip
    assert code == 0, err
    assert "CPU INT8 agreement" in err
    assert "Finding optimal threshold" not in out + err  # ONNX Runtime's own prints stay out
    artifacts = {a.path: a for a in Bundle.load(bundle).artifacts}
    tensorrt, cpu = artifacts["model.int8-tensorrt.onnx"], artifacts["model.int8-cpu.onnx"]
    # The TensorRT form (Concat not quantized) needed no search at the last landing; on this machine's packages its
    # head Conv misses too (measured 2026-12-03), so it may search as well: what holds is that it meets the bar.
    assert tensorrt.extra["fidelity"]["agreement"] >= 0.99
    search = cpu.extra["min_agreement_search"]
    assert search["agreement_before"] < 0.9 and search["met"] and cpu.extra["fidelity"]["agreement"] >= 0.99
    assert max(search["sensitivity"], key=search["sensitivity"].get) == "/model/Concat"
    assert "/model/Concat" in cpu.extra["float_layers"]
    assert search["quantize_calls"] >= search["layers"] and search["seconds"] >= 0


def test_the_search_stops_measuring_at_its_time_limit_and_says_so(tmp_path, capsys):
    bundle = tmp_path / "bundle"
    assert run_cli(capsys, "export", "user_models:residual_add_net", "-o", bundle, "--size", "64x64")[0] == 0
    data = "synthetic://medical?seed=4000&frames=24&size=64x64"
    code, _, err = run_cli(capsys, "calibrate", bundle, "--data", data, "--count", "16", "--eval-count", "8",
                           "--precision", "int8", "--min-agreement", "0.99", "--search-minutes", "1e-9")  # fmt: skip
    assert code == 0, err
    assert "sensitivity measured for 0 of 4 nodes" in err
    search = Bundle.load(bundle).select("onnx", "int8", targets=("tensorrt",)).extra["min_agreement_search"]
    assert search["measured"] == 0 and search["layers"] == 4 and search["sensitivity"] == {}
    assert search["met"]  # in graph order, the nodes up to the Add in float


def test_every_artifact_loads_in_onnx_runtime_without_a_warning(tmp_path, capfd):
    """A head that upsamples by a constant factor records its NCHW shapes in the graph; the CPU form's channels-last
    tail must not leave them stale (ONNX Runtime printed "Error merging shape info" for each, at every start)."""
    import onnxruntime as ort

    bundle = tmp_path / "bundle"
    code, _, err = run_cli(capfd, "export", "user_models:constant_upsample_net", "-o", bundle, "--size", "64x64")
    assert code == 0, err
    code, _, err = run_cli(
        capfd, "calibrate", bundle, "--data", DATA, "--count", "16", "--eval-count", "8", "--cpu-format", "qdq"
    )
    assert code == 0, err
    capfd.readouterr()
    options = ort.SessionOptions()
    options.log_severity_level = 1  # info and above: a warning would be printed
    paths = sorted(bundle.glob("model*.onnx"))
    assert [p.name for p in paths] == [
        "model.fp16.onnx",
        "model.int8-cpu.onnx",
        "model.int8-tensorrt.onnx",
        "model.onnx",
    ]
    for path in paths:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        (classes,) = session.run(None, {"frame": np.zeros((1, 64, 64, 3), np.uint8)})
        assert classes.shape == (1, 64, 64)
    printed = capfd.readouterr()
    assert "[W:onnxruntime" not in printed.err + printed.out and "MergeShapeInfo" not in printed.err


def test_fp32_that_predicts_one_class_everywhere_is_said_to_measure_little(tmp_path, capsys):
    bundle = tmp_path / "bundle"
    assert run_cli(capsys, "export", "user_models:one_class_net", "-o", bundle, "--size", "64x96")[0] == 0
    code, _, err = run_cli(
        capsys, "calibrate", bundle, "--data", DATA, "--count", "8", "--eval-count", "8", "--precision", "fp16"
    )
    assert code == 0, err
    assert "FP32 predicts 'class0' on 100.00% of the held-out pixels" in err
    assert Bundle.load(bundle).select("onnx", "fp16").extra["fidelity"]["agreement"] == 1.0  # the figure it warns of


def test_labels_of_another_class_set_skip_miou_and_say_why(tmp_path, capsys):
    """A 21-class model on the 9-class driving scene printed FP32 mIoU 0.0000."""
    bundle = tmp_path / "bundle"
    code, _, err = run_cli(capsys, "export", "lraspp", "-o", bundle, "--size", "64x64", "--classes", "21",
                           "--arg", "width=4")  # fmt: skip
    assert code == 0, err
    driving = "synthetic://driving?frames=24&size=64x64"
    code, out, err = run_cli(
        capsys, "calibrate", bundle, "--data", driving, "--count", "8", "--eval-count", "8", "--precision", "fp16"
    )
    assert code == 0, err
    assert "mIoU not measured: the labels have 9 classes and the model 21 numbered ones" in err
    fidelity = Bundle.load(bundle).select("onnx", "fp16").extra["fidelity"]
    assert "miou" not in fidelity and "agreement" in fidelity
    assert "fp32_miou" not in Bundle.load(bundle).manifest["calibration"]


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_streamed_ranges_are_the_ranges_onnx_runtime_computes(trained_bundle, tmp_path, method):
    """Ranges from one frame's activations at a time (budget of 64 KB a fetch: many groups) equal ONNX Runtime's own
    calibrator on the same chunks, which holds every activation of a chunk at once."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    from edgeseg.calibration.quantize import TENSORRT, TensorReader
    from edgeseg.calibration.ranges import collect_ranges

    contract = Bundle.load(trained_bundle).input
    frames = [f.image for f in open_source("synthetic://medical?seed=4200&frames=24&size=96x64")]
    reader = TensorReader(contract.name, frames_to_input(frames, contract), 1)
    chosen = CalibrationMethod.Entropy if method == "entropy" else CalibrationMethod.Percentile
    calibrator = create_calibrator(
        trained_bundle / "model.onnx", list(TENSORRT.op_types), str(tmp_path / "augmented.onnx"), chosen
    )
    for start in range(0, len(reader), 8):  # what quantize_static does with CalibStridedMinMax=8
        reader.set_range(start, start + 8)
        calibrator.collect_data(reader)
    expected = calibrator.compute_data()
    feeds = [{contract.name: batch} for batch in reader.batches]
    streamed = collect_ranges(trained_bundle / "model.onnx", list(TENSORRT.op_types), feeds, chosen, {}, 8, 64 * 1024)
    assert sorted(streamed.data) == sorted(expected.data) and len(expected.data) > 20
    for name, value in expected.data.items():
        assert np.array_equal(streamed.data[name].range_value, value.range_value), name
    assert all(getattr(v, "hist", None) is not None for v in expected.data.values())  # histograms are compared too
    for name, value in expected.data.items():
        for key in ("hist", "hist_edges", "bins"):  # the histogram itself, where the method keeps it
            assert np.array_equal(getattr(streamed.data[name], key, None), getattr(value, key, None)), (name, key)


def test_activations_are_fetched_in_groups_that_fit_the_budget():
    """The streamed collector never asks ONNX Runtime for more than --max-memory of one frame's activations at once
    (a tensor larger than the budget alone), in graph order, every tensor once."""
    from edgeseg.calibration.ranges import fetch_groups

    sizes = {"a": 100, "b": 200, "c": 50, "d": 1000, "e": 10, "f": 10}  # elements (float32: 4 bytes each)
    groups = fetch_groups(list(sizes), sizes, budget_bytes=1200)
    assert groups == [["a", "b"], ["c"], ["d"], ["e", "f"]]
    assert all(sum(4 * sizes[n] for n in g) <= 1200 or len(g) == 1 for g in groups)
    assert fetch_groups(list(sizes), sizes, budget_bytes=10**9) == [list(sizes)]


# -- bad input ------------------------------------------------------------------------------------
def test_empty_calibration_folder(trained_bundle, tmp_path, capsys):
    code, _, err = run_cli(capsys, "calibrate", trained_bundle, "--data", tmp_path)
    assert_one_line_error(code, err, "has no images")


def test_unreadable_calibration_images(trained_bundle, tmp_path, capsys):
    for i in range(4):
        (tmp_path / f"{i}.png").write_bytes(b"not an image")
    code, _, err = run_cli(capsys, "calibrate", trained_bundle, "--data", tmp_path, "--count", "2", "--eval-count", "1")
    assert_one_line_error(code, err, "decodable frames")


def test_video_with_fewer_frames_than_asked(trained_bundle, sample_video, capsys):
    code, _, err = run_cli(capsys, "calibrate", trained_bundle, "--data", sample_video, "--count", "100")
    assert_one_line_error(code, err, "yields 68 frames", "needs 164")


def test_images_of_another_size_are_resized_and_said_so(trained_bundle, tmp_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(trained_bundle, bundle)
    code, _, err = run_cli(
        capsys,
        "calibrate",
        bundle,
        "--data",
        "synthetic://medical?seed=9&frames=30&size=160x120",
        "--count",
        "10",
        "--eval-count",
        "4",
        "--precision",
        "fp16",
    )
    assert code == 0
    assert "calibration frames are 160x120; resized to the model's 96x64" in err
    assert Bundle.load(bundle).manifest["calibration"]["resized"] is True


def test_bundle_without_fp32_artifact(trained_bundle, tmp_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(trained_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["artifacts"] = []
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(capsys, "calibrate", bundle, "--data", DATA)
    assert_one_line_error(code, err, "no FP32 ONNX artifact")


def test_graph_that_cannot_be_quantized(tmp_path, capsys):
    """A graph without a single Conv has nothing for INT8 to do."""
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["input"], ["logits"])
    model = helper.make_model(
        helper.make_graph(
            [node],
            "no-conv",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 32, 32])],
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    onnx.save(model, str(tmp_path / "noconv.onnx"))
    assert run_cli(capsys, "export", tmp_path / "noconv.onnx", "-o", tmp_path / "b")[0] == 0
    code, _, err = run_cli(
        capsys,
        "calibrate",
        tmp_path / "b",
        "--data",
        "synthetic://driving?frames=10&size=32x32",
        "--count",
        "4",
        "--eval-count",
        "2",
        "--precision",
        "int8",
    )
    assert_one_line_error(code, err, "cannot be quantized", "no Conv")


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2"])
def test_min_agreement_outside_the_unit_interval(trained_bundle, value, capsys):
    code, _, err = run_cli(capsys, "calibrate", trained_bundle, "--data", DATA, "--min-agreement", value)
    assert_one_line_error(code, err, "outside (0, 1]")


def test_interrupted_calibration_lists_nothing_new(trained_bundle, tmp_path, monkeypatch):
    """Ctrl-C after some variants were written: the manifest still lists only what it listed before."""
    import edgeseg.calibration as calibration

    bundle_dir = tmp_path / "b"
    shutil.copytree(trained_bundle, bundle_dir)
    before = (bundle_dir / "manifest.json").read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(calibration.Calibration, "cpu_int8", interrupted)
    with pytest.raises(KeyboardInterrupt):
        calibration.calibrate(
            bundle_dir, calibration.CalibrateOptions(data=DATA, count=8, eval_count=4, method="minmax", progress=False)
        )
    assert (bundle_dir / "model.fp16.onnx").exists()  # written, but not trusted:
    assert (bundle_dir / "manifest.json").read_text() == before
    assert not list(bundle_dir.glob(".*.partial"))


def test_a_synthetic_scene_without_frames_renders_what_calibration_needs():
    from edgeseg.calibration.dataset import with_enough_frames
    from edgeseg.runtime.sources import open_source

    asked = with_enough_frames("synthetic://driving", 256 + 64)
    assert asked == "synthetic://driving?frames=320" and open_source(asked).length == 320
    assert with_enough_frames("synthetic://driving?size=64x64", 400) == "synthetic://driving?size=64x64&frames=400"
    assert with_enough_frames("synthetic://driving?frames=12", 400) == "synthetic://driving?frames=12"  # the user's
    assert with_enough_frames("clips/", 400) == "clips/"
    assert with_enough_frames("synthetic://medical", 100) == "synthetic://medical"  # 300 is enough
