"""`edgeseg check`: every zoo family at every precision, graphs written to break each rule, and graphs shaped like the
ones torchvision's segmentation models export (built here with ONNX's helper API; torchvision is not a dependency)."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from conftest import TINY, assert_one_line_error, run_cli
from onnx import TensorProto, helper, numpy_helper

from edgeseg.engines.check import check_bundle, check_model, resolve_targets
from edgeseg.errors import EdgesegError

JETPACKS = resolve_targets(None, None)  # 8.5 (JetPack 5.1), 10.3 (6.1/6.2), 10.13 (7)
FAMILIES = ["fcn32s", "fcn16s", "fcn8s", "unet", "deeplabv3", "deeplabv3plus", "pspnet", "lraspp"]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_zoo_family_at_every_precision_builds_on_jetpack_5_6_7(family, tmp_path, capsys):
    bundle = tmp_path / family
    size = "96x96" if family == "pspnet" else "64x64"  # pyramid pooling 1/2/3/6 at stride 8 needs multiples of 48
    code, out, err = run_cli(capsys, "export", family, "-o", bundle, "--size", size, "--classes", "3", "--arg",
                             "width=4")  # fmt: skip
    assert code == 0, err
    assert "TensorRT check: every graph builds on TensorRT 8.5 (JetPack 5), TensorRT 10.3 (JetPack 6.1/6.2)" in out
    code, out, err = run_cli(capsys, "calibrate", bundle, "--data", f"synthetic://driving?seed=3&frames=8&size={size}",
                             "--count", "4", "--eval-count", "2", "--method", "minmax")  # fmt: skip
    assert code == 0, err
    assert "TensorRT check: every graph builds" in out
    verdicts = check_bundle(bundle, JETPACKS)
    assert {(v.artifact, v.target) for v in verdicts} == {
        (artifact, target)
        for artifact in ("model.onnx", "model.fp16.onnx", "model.int8-tensorrt.onnx")
        for target in JETPACKS
    }  # the CPU-shaped INT8 graph is not TensorRT's, so it is not checked
    assert all(v.builds for v in verdicts), [(v.artifact, v.target, v.problems) for v in verdicts if not v.builds]


def test_the_demo_bundle_gets_a_verdict_per_jetpack(tmp_path, capsys):
    bundle = tmp_path / "demo"
    assert run_cli(capsys, "export", "demo-driving", "-o", bundle)[0] == 0
    code, out, _ = run_cli(capsys, "check", bundle, "--jetpack", "5", "--jetpack", "6", "--jetpack", "7")
    assert code == 0
    for label in ("TensorRT 8.5 (JetPack 5): builds", "TensorRT 8.6 (JetPack 6.0): builds",
                  "TensorRT 10.3 (JetPack 6.1/6.2): builds", "TensorRT 10.13 (JetPack 7): builds"):  # fmt: skip
        assert f"model.onnx (fp32) on {label}" in out


# -- graphs that break one rule each -------------------------------------------------------------------
def graph(nodes, inputs, outputs, initializers=(), opset=17):
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    model.ir_version = 8
    return model


def value(name, elem=TensorProto.FLOAT, shape=(1, 3, 8, 8)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def conv_model(opset=17, elem=TensorProto.FLOAT):
    weight = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w")
    return graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [value("x", elem)], [value("y")],
                 [weight], opset)  # fmt: skip


def problems(model, target, **kwargs):
    return [f.line() for f in check_model(model, target, **kwargs).problems]


def test_opset_range_per_version():
    assert problems(conv_model(opset=18), "8.5") == [
        "opset 18: TensorRT 8.5's parser reads opset 7 to 17; export with --opset 17"
    ]
    assert problems(conv_model(opset=18), "10.3") == []
    assert "reads opset 9 to 20" in problems(conv_model(opset=8), "10.13")[0]


def test_unsupported_operator_and_foreign_domain():
    unique = graph([helper.make_node("Unique", ["x"], ["y"], name="uniq")], [value("x")], [value("y", shape=[None])])
    assert problems(unique, "10.3") == [
        "node uniq (Unique): Unique is not supported by TensorRT 10.3's ONNX parser (onnx-tensorrt 10.1-GA "
        "docs/operators.md)"
    ]
    custom = graph([helper.make_node("Plugin", ["x"], ["y"], name="p", domain="com.example")], [value("x")],
                   [value("y")])  # fmt: skip
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    assert "needs a TensorRT plugin" in problems(custom, "8.5")[0]


def test_uint8_only_through_a_cast_at_the_edge():
    assert "TensorRT takes UINT8 only into or out of a Cast" in problems(conv_model(elem=TensorProto.UINT8), "10.3")[0]
    cast = graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT32, name="to_int")],
                 [value("x", TensorProto.UINT8)], [value("y", TensorProto.INT32)])  # fmt: skip
    assert problems(cast, "8.5") == ["node to_int (Cast): Cast from UINT8 must read a network input and give FP32/FP16 "
                                     "(gives INT32)"]  # fmt: skip
    good = graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT, name="to_float")],
                 [value("x", TensorProto.UINT8)], [value("y")])  # fmt: skip
    assert problems(good, "8.5") == []


def qdq_model(zero_point=None, zero_type=TensorProto.INT8, scale=(0.1,), dequantize_inputs=3):
    scale_tensor = numpy_helper.from_array(np.array(scale, np.float32).reshape(-1 if len(scale) > 1 else ()), "s")
    zero_values = np.array(zero_point if zero_point is not None else [0] * len(scale))
    zero_tensor = helper.make_tensor("z", zero_type, [len(scale)] if len(scale) > 1 else [], zero_values.tolist())
    q_inputs, dq_inputs = ["x", "s", "z"], ["q", "s", "z"][:dequantize_inputs]
    axis = {"axis": 1} if len(scale) > 1 else {}
    nodes = [helper.make_node("QuantizeLinear", q_inputs, ["q"], name="quant", **axis),
             helper.make_node("DequantizeLinear", dq_inputs, ["y"], name="dequant", **axis)]  # fmt: skip
    return graph(nodes, [value("x")], [value("y")], [scale_tensor, zero_tensor])


def test_quantize_rules():
    assert problems(qdq_model(), "8.5") == [] and problems(qdq_model(), "10.3") == []
    assert any("zero point is not 0" in p for p in problems(qdq_model(zero_point=[3]), "10.3"))
    uint8_zero = problems(qdq_model(zero_type=TensorProto.UINT8), "8.5")
    assert any("zero point type UINT8: TensorRT 8.5 quantizes to INT8 only" in p for p in uint8_zero)
    assert problems(qdq_model(dequantize_inputs=2), "8.5") == [
        "node dequant (DequantizeLinear): TensorRT 8.5 needs DequantizeLinear's zero point input (all zeros)"
    ]
    assert problems(qdq_model(dequantize_inputs=2), "8.6") == []
    per_channel = problems(qdq_model(scale=(0.1, 0.2, 0.3)), "10.3")
    assert "node quant (QuantizeLinear): per-channel scales on an activation" in per_channel[0]
    assert any("scale must be positive" in p for p in problems(qdq_model(scale=(-0.1,)), "8.6"))


def test_argmax_types_and_topk_k_per_version():
    argmax = graph([helper.make_node("ArgMax", ["x"], ["y"], axis=1, name="am")], [value("x", TensorProto.INT32)],
                   [value("y", TensorProto.INT64, (1, 1, 8, 8))])  # fmt: skip
    edge = "network output 'y' is INT64, which TensorRT {} has no type for; cast it to INT32 in the graph"
    assert problems(argmax, "8.5") == [edge.format("8.5"), "node am (ArgMax): input type INT32: TensorRT 8.5 runs "
                                       "ArgMax on FP32, FP16"]  # fmt: skip
    assert problems(argmax, "8.6") == [edge.format("8.6")]  # INT32 ArgMax arrived in 8.6
    assert problems(argmax, "10.3") == []
    k_from_shape = graph(
        [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
         helper.make_node("Gather", ["shape", "one"], ["k"], axis=0, name="pick"),
         helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=1, name="topk")],
        [value("x", shape=(1, 8))], [value("values", shape=(1, None)), value("indices", TensorProto.INT64, (1, None))],
        [numpy_helper.from_array(np.array([1], np.int64), "one")],
    )  # fmt: skip
    assert any("node topk (TopK): K must be an initializer on TensorRT 8.5" in p for p in problems(k_from_shape, "8.5"))
    assert not any("K must be" in p for p in problems(k_from_shape, "10.3"))


def resize_model(opset=17, **attributes):
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", **attributes)
    return graph([node], [value("x")], [value("y", shape=(1, 3, 16, 16))], [scales], opset)


def test_resize_modes():
    assert problems(resize_model(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), "8.5") == []
    assert problems(resize_model(mode="cubic"), "10.3") == [
        "node up (Resize): Resize mode='cubic': TensorRT takes nearest, linear"
    ]
    assert "tf_crop_and_resize" in problems(resize_model(coordinate_transformation_mode="tf_crop_and_resize"), "8.5")[0]
    assert "antialias=1" in problems(resize_model(opset=18, mode="linear", antialias=1), "10.3")[0]


def test_int64_at_the_network_edge_on_8_x():
    model = graph([helper.make_node("ArgMax", ["x"], ["y"], axis=1, name="am")], [value("x")],
                  [value("y", TensorProto.INT64, (1, 1, 8, 8))])  # fmt: skip
    assert problems(model, "8.5") == [
        "network output 'y' is INT64, which TensorRT 8.5 has no type for; cast it to INT32 in the graph"
    ]
    assert problems(model, "10.3") == []


def test_dla_rules():
    dynamic = graph([helper.make_node("Relu", ["x"], ["y"], name="r")], [value("x", shape=(None, 3, 8, 8))],
                    [value("y", shape=(None, 3, 8, 8))])  # fmt: skip
    assert any("dynamic dimension; the DLA needs fixed shapes" in p for p in problems(dynamic, "10.3", dla=True))
    assert any("the DLA runs FP16 and INT8 only" in p for p in problems(conv_model(), "10.3", dla=True))
    assert problems(conv_model(), "10.3", dla=True, precision="fp16") == []
    assert "TensorRT 11 does not support the DLA" in problems(conv_model(), "11", dla=True, precision="fp16")[0]
    argmax = graph([helper.make_node("ArgMax", ["x"], ["y"], axis=1, name="am")], [value("x")],
                   [value("y", TensorProto.INT64, (1, 1, 8, 8))])  # fmt: skip
    warnings = [f.line() for f in check_model(argmax, "10.3", precision="int8", dla=True).warnings]
    assert warnings == ["node am (ArgMax): ArgMax cannot run on the DLA: this layer falls back to the GPU"]


# -- what torchvision's segmentation models export (their graph's shape, built here) -------------------------
def torchvision_like(kind: str):
    """The operators and attributes torch.onnx gives torchvision's LR-ASPP (MobileNetV3: HardSwish, HardSigmoid,
    AdaptiveAvgPool -> GlobalAveragePool), DeepLabV3 and FCN (ASPP pooling branch resized back to the feature map
    by sizes computed from Shape; F.interpolate bilinear -> Resize linear pytorch_half_pixel), with the 'out'
    and 'aux' float outputs of their OrderedDict."""
    w = numpy_helper.from_array(np.full((4, 3, 1, 1), 0.1, np.float32), "w")
    w2 = numpy_helper.from_array(np.full((4, 4, 1, 1), 0.1, np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/backbone/conv")]
    if kind == "lraspp":
        nodes += [helper.make_node("HardSwish", ["c"], ["a"], name="/backbone/hardswish"),
                  helper.make_node("GlobalAveragePool", ["a"], ["p"], name="/head/pool"),
                  helper.make_node("HardSigmoid", ["p"], ["g"], name="/head/gate"),
                  helper.make_node("Mul", ["a", "g"], ["m"], name="/head/mul")]  # fmt: skip
    else:
        nodes += [helper.make_node("Relu", ["c"], ["a"], name="/backbone/relu"),
                  helper.make_node("GlobalAveragePool", ["a"], ["p"], name="/aspp/pool"),
                  helper.make_node("Shape", ["a"], ["shape"], name="/aspp/shape"),
                  helper.make_node("Slice", ["shape", "start", "end"], ["hw"], name="/aspp/slice"),
                  helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0, name="/aspp/concat"),
                  helper.make_node("Resize", ["p", "", "", "sizes"], ["m"], mode="linear", name="/aspp/resize",
                                   coordinate_transformation_mode="pytorch_half_pixel")]  # fmt: skip
    nodes += [helper.make_node("Conv", ["m", "w2"], ["logits"], name="/classifier/conv"),
              helper.make_node("Resize", ["logits", "", "up"], ["out"], mode="linear",
                               coordinate_transformation_mode="pytorch_half_pixel", name="/Resize"),
              helper.make_node("Identity", ["out"], ["aux"], name="/aux")]  # fmt: skip
    constants = [w, w2, numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up"),
                 numpy_helper.from_array(np.array([2], np.int64), "start"),
                 numpy_helper.from_array(np.array([4], np.int64), "end"),
                 numpy_helper.from_array(np.array([1, 4], np.int64), "nc")]  # fmt: skip
    outputs = [value("out", shape=(1, 4, 16, 16)), value("aux", shape=(1, 4, 16, 16))]
    return graph(nodes, [value("x")], outputs, constants)


@pytest.mark.parametrize("kind", ["lraspp", "deeplabv3"])
def test_torchvision_shaped_graphs_build_on_every_jetpack(kind):
    model = torchvision_like(kind)
    onnx.checker.check_model(model, full_check=True)
    for target in JETPACKS:
        verdict = check_model(model, target)
        assert verdict.builds, (target, verdict.problems)
    if kind == "deeplabv3":  # its shape arithmetic is INT64, which 8.x casts down: a warning, not a refusal
        assert [f.line() for f in check_model(model, "8.5").warnings] == [
            "INT64 tensors inside the graph are cast down to INT32 inside the network"
        ]


# -- the CLI ---------------------------------------------------------------------------------------------
def test_check_exit_status_and_one_line_per_problem(tmp_path, capsys):
    path = tmp_path / "broken.onnx"
    onnx.save(resize_model(mode="cubic"), path)
    code, out, _ = run_cli(capsys, "check", path, "--tensorrt", "8.5", "--tensorrt", "10.3")
    assert code == 1
    assert out.splitlines() == [
        "broken.onnx (fp32) on TensorRT 8.5 (JetPack 5): will not build: node up (Resize): Resize mode='cubic': "
        "TensorRT takes nearest, linear",
        "broken.onnx (fp32) on TensorRT 10.3 (JetPack 6.1/6.2): will not build: node up (Resize): Resize "
        "mode='cubic': TensorRT takes nearest, linear",
    ]


def test_layer_norm_on_jetpack_5_is_one_line_per_rule_and_names_opset_16(tmp_path, capsys):
    """Segformer's and UPerNet's LayerNorm: one LayerNormalization node each at opset 17, none in 8.5's parser."""
    bundle = tmp_path / "ln"
    code, _, err = run_cli(capsys, "export", "user_models:layer_norm_net", "-o", bundle, "--size", "32x32")
    assert code == 0, err
    code, out, _ = run_cli(capsys, "check", bundle, "--jetpack", "5")
    assert code == 1 and len(out.splitlines()) <= 3, out
    assert "3 nodes, the first /model/norms.0/LayerNormalization (LayerNormalization)" in out
    assert "export with --opset 16" in out and out.count("LayerNormalization is not supported") == 1
    code, _, err = run_cli(capsys, "calibrate", bundle, "--data", "synthetic://driving", "--count", "12",
                           "--eval-count", "12", "--precision", "fp16")  # fmt: skip
    assert code == 0, err
    code, out, _ = run_cli(capsys, "check", bundle, "--jetpack", "5")
    assert len(out.splitlines()) <= 3, out  # the FP16 graph shares the FP32 graph's line
    assert "model.onnx (fp32), model.fp16.onnx (fp16) on TensorRT 8.5" in out
    fixed = tmp_path / "ln16"
    code, _, err = run_cli(capsys, "export", "user_models:layer_norm_net", "-o", fixed, "--size", "32x32", "--opset",
                           "16")  # fmt: skip
    assert code == 0, err
    code, out, _ = run_cli(capsys, "check", fixed, "--jetpack", "5", "--jetpack", "6", "--jetpack", "7")
    assert code == 0, out


def test_an_operator_without_an_older_form_gets_no_opset_fix():
    from edgeseg.engines.check import _opset_entered

    assert _opset_entered("LayerNormalization") == 17 and _opset_entered("Conv") == 1
    assert _opset_entered("NoSuchOp") is None


def test_check_bad_input_is_one_line(tmp_path, capsys, tiny_bundle):
    code, _, err = run_cli(capsys, "check", tmp_path / "missing")
    assert_one_line_error(code, err, "missing")
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"\x08\x07garbage" * 10)
    code, _, err = run_cli(capsys, "check", damaged)
    assert_one_line_error(code, err, "not a readable ONNX file")
    code, _, err = run_cli(capsys, "check", tiny_bundle, "--tensorrt", "9.0")
    assert code == 2 and "invalid choice" in err and "Traceback" not in err
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    (copy / "model.onnx").write_bytes(b"not onnx")
    code, _, err = run_cli(capsys, "check", copy)
    assert code != 0 and "Traceback" not in err and err.count("\n") == 1


# -- JetPack 4.6 (TensorRT 8.2) and JetPack 6.0 (8.6) / 6.1-6.2 (10.3) ------------------------------------------
def test_jetpack_values_name_the_tensorrt_each_release_ships():
    assert resolve_targets(None, ["4"]) == resolve_targets(None, ["4.6"]) == ["8.2"]
    assert resolve_targets(None, ["6"]) == ["8.6", "10.3"]  # JetPack 6.0 ships 8.6.2, 6.1 and 6.2 ship 10.3.0
    assert resolve_targets(None, ["6.0"]) == ["8.6"] and resolve_targets(None, ["6.2"]) == ["10.3"]
    assert resolve_targets(None, ["5", "6", "7"]) == ["8.5", "8.6", "10.3", "10.13"]
    assert resolve_targets(None, None) == ["8.5", "10.3", "10.13"]


def test_the_default_leaves_out_8_6_because_8_5_is_at_least_as_strict():
    """Why the default (no --jetpack) checks 8.5 and not also 8.6: every rule is at least as strict on 8.5."""
    from edgeseg.engines.check import rules

    targets, tables = rules()["targets"], rules()["operator_tables"]
    old, new = targets["8.5"], targets["8.6"]
    assert old["opset"] == new["opset"] and old["int64"] == new["int64"] and old["dla"] == new["dla"]
    assert new["quantized_types"] == old["quantized_types"]
    assert old["dequantize_needs_zero_point"] >= new["dequantize_needs_zero_point"]
    assert old["topk_k_initializer"] >= new["topk_k_initializer"]
    for operator, entry in tables[old["table"]].items():
        if entry.get("supported") is False:
            continue
        newer = tables[new["table"]][operator]
        assert newer.get("supported") is not False and set(entry["types"]) <= set(newer["types"]), operator


def check_conv(tmp_path, capsys, opset: int, jetpack: str) -> tuple[int, list[str]]:
    """`edgeseg check` of a one-Conv graph at an opset: exit status and output lines."""
    path = tmp_path / f"opset{opset}.onnx"
    onnx.save(conv_model(opset=opset), path)
    code, out, _ = run_cli(capsys, "check", path, "--jetpack", jetpack)
    return code, out.splitlines()


def test_jetpack_6_0_applies_8_6_rules_and_6_1_those_of_10_3(tmp_path, capsys):
    assert check_conv(tmp_path, capsys, 18, "6.0") == (1, [
        "opset18.onnx (fp32) on TensorRT 8.6 (JetPack 6.0): will not build: opset 18: TensorRT 8.6's parser reads "
        "opset 7 to 17; export with --opset 17"
    ])  # fmt: skip
    builds = "opset18.onnx (fp32) on TensorRT 10.3 (JetPack 6.1/6.2): builds"
    assert check_conv(tmp_path, capsys, 18, "6.1") == (0, [builds])
    code, lines = check_conv(tmp_path, capsys, 18, "6")  # both
    assert code == 1 and [line.split(":")[0] for line in lines] == [
        "opset18.onnx (fp32) on TensorRT 8.6 (JetPack 6.0)", "opset18.onnx (fp32) on TensorRT 10.3 (JetPack 6.1/6.2)"
    ]  # fmt: skip
    at_13 = qdq_model(dequantize_inputs=2)
    at_13.opset_import[0].version = 13
    dequantize = problems(at_13, "8.2")  # 8.2, like 8.5, needs the zero point input
    assert dequantize == ["node dequant (DequantizeLinear): TensorRT 8.2 needs DequantizeLinear's zero point input "
                          "(all zeros)"]  # fmt: skip


def test_jetpack_4_passes_an_opset_13_unet_and_refuses_opset_17_in_one_line(tmp_path, capsys):
    bundle = tmp_path / "unet13"
    code, out, err = run_cli(capsys, "export", "unet", "-o", bundle, "--opset", "13", "--no-fuse-preprocess",
                             "--no-fuse-argmax", *TINY)  # fmt: skip
    assert code == 0, err
    # an opset TensorRT 8.2 reads: export's verdict covers JetPack 4.6 too
    assert "TensorRT check: every graph builds on TensorRT 8.2 (JetPack 4.6), TensorRT 8.5 (JetPack 5)" in out
    code, out, err = run_cli(capsys, "calibrate", bundle, "--data", "synthetic://driving?seed=3&frames=8&size=64x64",
                             "--count", "4", "--eval-count", "2", "--method", "minmax")  # fmt: skip
    assert code == 0, err
    code, out, _ = run_cli(capsys, "check", bundle, "--jetpack", "4")
    assert code == 0 and out.splitlines() == [
        "model.onnx (fp32), model.fp16.onnx (fp16), model.int8-tensorrt.onnx (int8) on TensorRT 8.2 (JetPack 4.6): "
        "builds"
    ]  # the artifacts that share a verdict share its line
    assert check_conv(tmp_path, capsys, 17, "4") == (1, [
        "opset17.onnx (fp32) on TensorRT 8.2 (JetPack 4.6): will not build: opset 17: TensorRT 8.2's parser reads "
        "opset 7 to 13; export with --opset 13"
    ])  # fmt: skip


def test_jetpack_4_has_no_uint8_and_says_which_export_flag_gives_float_ends(tmp_path, capsys):
    bundle = tmp_path / "fused"
    code, out, err = run_cli(capsys, "export", "unet", "-o", bundle, "--opset", "13", *TINY)
    assert code == 0, err
    assert "will not build on TensorRT 8.2 (JetPack 4.6)" in out  # export's verdict says so at once
    code, out, _ = run_cli(capsys, "check", bundle / "model.onnx", "--jetpack", "4")
    assert code == 1
    assert out.splitlines()[1:3] == [
        "  network output 'classes' is UINT8, which TensorRT 8.2 has no type for (UINT8 arrived in 8.5); export with "
        "--no-fuse-argmax for a float output",
        "  network input 'frame' is UINT8, which TensorRT 8.2 has no type for (UINT8 arrived in 8.5); export with "
        "--no-fuse-preprocess for a float input",
    ]
    code, out, _ = run_cli(capsys, "check", bundle / "model.onnx", "--jetpack", "5")
    assert code == 0  # 8.5 takes UINT8 through a Cast at the edge


def test_tensorrt_8_2_parser_rules():
    mod = graph([helper.make_node("Mod", ["x", "x"], ["y"], name="mod")], [value("x", TensorProto.INT32)],
                [value("y", TensorProto.INT32)], opset=13)  # fmt: skip
    assert problems(mod, "8.2") == ["node mod (Mod): Mod is not supported by TensorRT 8.2's ONNX parser "
                                    "(onnx-tensorrt 8.2-GA docs/operators.md)"]  # fmt: skip
    assert problems(mod, "8.5") == []
    # Resize by scales: 8.2 needs them as an initializer, and linear only on the innermost 3 dimensions
    assert problems(resize_model(opset=13, mode="linear"), "8.2") == []
    computed = resize_model(opset=13)
    computed.graph.initializer.pop()
    computed.graph.input.append(value("scales", shape=(4,)))
    assert problems(computed, "8.2") == [
        "node up (Resize): Resize scales must be an initializer on TensorRT 8.2 (they are computed here)"
    ]
    assert problems(computed, "8.5") == []
    batch_scaled = resize_model(opset=13, mode="linear")
    batch_scaled.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([2, 1, 2, 2], np.float32), "scales"))
    assert "resizes linearly only the innermost 3 dimensions" in problems(batch_scaled, "8.2")[0]


def test_xavier_dla_rules_on_tensorrt_8_2():
    softmax = graph([helper.make_node("Softmax", ["x"], ["y"], axis=1, name="sm")], [value("x")], [value("y")],
                    opset=13)  # fmt: skip
    xavier = [f.line() for f in check_model(softmax, "8.2", precision="fp16", dla=True).warnings]
    assert xavier == ["node sm (Softmax): Softmax cannot run on the DLA: this layer falls back to the GPU"]
    assert check_model(softmax, "10.3", precision="fp16", dla=True).warnings == []  # Orin's DLA runs SoftMax
    assert problems(conv_model(opset=13), "8.2", dla=True, precision="fp16") == []


def test_check_refuses_an_unknown_jetpack_in_one_line(tmp_path, capsys, tiny_bundle):
    code, _, err = run_cli(capsys, "check", tiny_bundle, "--jetpack", "3")
    assert code == 2 and "invalid choice: '3'" in err and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(EdgesegError, match="--jetpack 6.5: choose one of 4, 4.6, 5"):
        resolve_targets(None, ["6.5"])
