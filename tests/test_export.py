"""Export: contracts, user models, weights, ONNX import with external data, and every bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import TINY, assert_one_line_error, run_cli
from user_models import resize_to_input_net

from edgeseg.bundle import Bundle
from edgeseg.classes import numbered_classes
from edgeseg.export import ExportOptions, export
from edgeseg.models import build_model
from edgeseg.runtime.tensors import frames_to_input


def session_io(bundle_dir):
    session = ort.InferenceSession(str(bundle_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    return session, session.get_inputs()[0], session.get_outputs()[0]


def test_fused_graph_takes_uint8_frames_and_returns_a_uint8_class_map(tiny_bundle):
    session, graph_in, graph_out = session_io(tiny_bundle)
    assert graph_in.type == "tensor(uint8)" and graph_in.shape == [1, 64, 64, 3]
    assert graph_out.type == "tensor(uint8)" and graph_out.shape == [1, 64, 64]
    classes = session.run(None, {graph_in.name: np.zeros((1, 64, 64, 3), np.uint8)})[0]
    assert classes.max() < 3


def test_unfused_graph_matches_the_fused_one(tmp_path, capsys):
    fused, plain = tmp_path / "fused", tmp_path / "plain"
    weights = tmp_path / "w.pt"
    torch.manual_seed(3)
    torch.save(build_model("lraspp", 3, width=8).state_dict(), weights)
    common = ["--size", "64x64", "--classes", "3", "--arg", "width=8", "--weights", weights]
    assert run_cli(capsys, "export", "lraspp", "-o", fused, *common)[0] == 0
    assert run_cli(capsys, "export", "lraspp", "-o", plain, "--no-fuse-preprocess", "--no-fuse-argmax", *common)[0] == 0
    plain_bundle = Bundle.load(plain)
    assert plain_bundle.input.layout == "NCHW" and plain_bundle.output.kind == "logits"
    frames = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), np.uint8) for i in range(2)]
    fused_session, fused_in, _ = session_io(fused)
    plain_session, plain_in, _ = session_io(plain)
    for frame in frames:
        maps = fused_session.run(None, {fused_in.name: frames_to_input([frame], Bundle.load(fused).input)})[0]
        logits = plain_session.run(None, {plain_in.name: frames_to_input([frame], plain_bundle.input)})[0]
        assert (maps == logits.argmax(1)).mean() >= 0.999


def test_dynamic_batch_runs_any_batch(tmp_path, capsys):
    out = tmp_path / "dyn"
    assert (
        run_cli(
            capsys,
            "export",
            "deeplabv3",
            "-o",
            out,
            *TINY,
            "--dynamic-batch",
        )[0]
        == 0
    )
    session, graph_in, _ = session_io(out)
    assert Bundle.load(out).input.batch is None
    assert session.run(None, {graph_in.name: np.zeros((3, 64, 64, 3), np.uint8)})[0].shape == (3, 64, 64)


def test_fixed_batch(tmp_path, capsys):
    out = tmp_path / "b2"
    assert (
        run_cli(
            capsys,
            "export",
            "fcn8s",
            "-o",
            out,
            *TINY,
            "--batch",
            "2",
        )[0]
        == 0
    )
    _, graph_in, _ = session_io(out)
    assert graph_in.shape[0] == 2 and Bundle.load(out).input.batch == 2


def test_dynamic_size_exports_for_other_sizes(tmp_path, capsys):
    out = tmp_path / "dynsize"
    assert (
        run_cli(
            capsys,
            "export",
            "unet",
            "-o",
            out,
            *TINY,
            "--dynamic-size",
        )[0]
        == 0
    )
    session, graph_in, _ = session_io(out)
    assert session.run(None, {graph_in.name: np.zeros((1, 96, 128, 3), np.uint8)})[0].shape == (1, 96, 128)


def test_user_module_function_with_dict_output(tmp_path, capsys):
    out = tmp_path / "user"
    code, _, err = run_cli(
        capsys, "export", "user_models:tiny_net", "-o", out, "--size", "32x48", "--arg", "num_classes=5"
    )
    assert code == 0, err
    bundle = Bundle.load(out)
    assert bundle.manifest["model"]["source"] == "module" and len(bundle.classes) == 5
    assert bundle.manifest["parity"]["class_map_agreement"] >= 0.999


@pytest.mark.parametrize(
    "flags,dims",
    [
        ((), ["batch", 48, 64]),
        (("--no-fuse-argmax",), ["batch", 5, 48, 64]),
        (("--dynamic-size",), ["batch", "height", "width"]),
    ],
)
def test_dynamic_batch_outputs_declare_batch_then_the_class_map_dims(tmp_path, capfd, flags, dims):
    """A resize to the input's size read at run time left the exporter's names: ['batch', 'Castclasses_dim_1',
    'Castclasses_dim_2']. ONNX Runtime (and so Triton) reports what the graph declares."""
    out = tmp_path / "b"
    code, _, err = run_cli(
        capfd, "export", "user_models:resize_to_input_net", "-o", out, "--size", "48x64", "--dynamic-batch", *flags
    )
    assert code == 0, err
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape == dims
    frames = np.zeros((3, 48, 64, 3), np.uint8) if "--no-fuse-argmax" not in flags else None
    if frames is not None:
        assert session.run(None, {"frame": frames})[0].shape == (3, 48, 64)
    assert "[W:onnxruntime" not in capfd.readouterr().err


def test_import_of_logits_with_an_unfixed_class_dim_says_logits(tmp_path, capsys):
    source = tmp_path / "dynamic.onnx"
    torch.onnx.export(
        resize_to_input_net(),
        (torch.rand(1, 3, 48, 64),),
        str(source),
        opset_version=17,
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    assert onnx.load(str(source)).graph.output[0].type.tensor_type.shape.dim[1].dim_param  # the class dim is a name
    code, _, err = run_cli(capsys, "export", source, "-o", tmp_path / "imported")
    assert_one_line_error(code, err, "outputs logits whose class dimension is not fixed", "pass --classes N")
    assert "class map" not in err
    code, _, err = run_cli(capsys, "export", source, "-o", tmp_path / "imported", "--classes", "5")
    assert code == 0, err


def test_pooling_bins_that_do_not_divide_name_the_sizes_that_work_and_print_nothing_else(tmp_path, capfd):
    code, out, err = run_cli(capfd, "export", "user_models:pyramid_net", "-o", tmp_path / "a", "--size", "64x64")
    assert_one_line_error(code, err, "pool pools a 32x32 map into 6x6 bins", "--size 60x60 or --size 72x72")
    assert out == "" and "Torch IR graph" not in err  # the exporter's C++ dump stayed out
    code, out, err = run_cli(capfd, "export", "user_models:pyramid_net", "-o", tmp_path / "b", "--size", "72x72")
    assert code == 0, err
    # Below the first size that works, the nearest below and above are one size, named once (UPerNet at 96x96)
    code, out, err = run_cli(capfd, "export", "user_models:pyramid_net", "-o", tmp_path / "d", "--size", "8x8")
    assert_one_line_error(code, err, "e.g. --size 12x12")
    assert "or --size" not in err
    code, out, err = run_cli(
        capfd, "export", "user_models:pyramid_net", "-o", tmp_path / "c", "--size", "64x64", "--verbose"
    )
    assert code != 0 and "Torch IR graph at exception" in out + err  # --verbose lets it through


def test_onnx_runtime_warnings_stay_out_of_edgeseg_output_unless_verbose(tmp_path, capfd):
    """A graph whose recorded shape disagrees with ONNX Runtime's inference: its C++ logger warns at load."""
    from onnx import TensorProto, helper

    from edgeseg.native_output import show_native_output
    from edgeseg.runtime.backends import ONNXRuntimeBackend

    nodes = [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Relu", ["t"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "stale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        value_info=[helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 5])],
    )
    path = tmp_path / "stale.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    capfd.readouterr()
    for verbose in (False, True):
        show_native_output(verbose)
        try:
            with ONNXRuntimeBackend(path, providers=["CPUExecutionProvider"]) as backend:
                assert backend.infer(np.ones((1, 4), np.float32)).shape == (1, 4)
        finally:
            show_native_output(False)
        printed = capfd.readouterr()
        assert ("onnxruntime" in printed.err + printed.out) == verbose, printed


def test_names_file_gives_names_and_colours(tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("# driving\nroad 128 64 128\nsky,70,130,180\nperson\n")
    out = tmp_path / "named"
    assert (
        run_cli(capsys, "export", "lraspp", "-o", out, "--size", "64x64", "--classes", names, "--arg", "width=4")[0]
        == 0
    )
    classes = Bundle.load(out).classes
    assert [c.name for c in classes] == ["road", "sky", "person"]
    assert classes[0].color == (128, 64, 128) and classes[1].color == (70, 130, 180)


def test_trained_weights_are_loaded_and_exported(tmp_path, capsys):
    torch.manual_seed(1)
    model = build_model("unet", 3, width=4)
    for module in model.modules():  # non-default BN statistics, so a load that was skipped would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    weights = tmp_path / "unet.pt"
    torch.save({"state_dict": model.state_dict(), "classes": [{"name": n, "color": [1, 2, 3]} for n in "abc"]}, weights)
    out = tmp_path / "trained"
    assert (
        run_cli(capsys, "export", "unet", "-o", out, "--size", "64x64", "--arg", "width=4", "--weights", weights)[0]
        == 0
    )
    bundle = Bundle.load(out)
    assert [c.name for c in bundle.classes] == ["a", "b", "c"]
    session, graph_in, _ = session_io(out)
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    float_input = frames_to_input(
        [frame], dataclasses.replace(bundle.input, fused_preprocess=False, layout="NCHW", color_order="RGB")
    )
    with torch.no_grad():
        expected = model(torch.from_numpy(float_input)).argmax(1).numpy()
    assert (session.run(None, {graph_in.name: frame[None]})[0] == expected).mean() >= 0.999


def test_import_onnx_with_external_data(tmp_path, capsys):
    source = tmp_path / "src" / "external.onnx"
    source.parent.mkdir()
    torch.manual_seed(0)
    model = build_model("deeplabv3plus", 3, width=4)
    torch.onnx.export(
        model,
        (torch.rand(1, 3, 64, 64),),
        str(tmp_path / "plain.onnx"),
        opset_version=17,
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
    )
    onnx.save_model(
        onnx.load(str(tmp_path / "plain.onnx")),
        str(source),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="external.onnx.data",
        size_threshold=0,
    )
    assert (source.parent / "external.onnx.data").stat().st_size > 10_000
    out = tmp_path / "imported"
    code, _, err = run_cli(capsys, "export", source, "-o", out)
    assert code == 0, err
    bundle = Bundle.load(out)
    (artifact,) = bundle.artifacts
    assert artifact.files and (out / "model.onnx.data").is_file()
    assert bundle.input.layout == "NCHW" and bundle.output.kind == "logits" and len(bundle.classes) == 3
    # The companion file is integrity-checked like the graph itself.
    with open(out / "model.onnx.data", "r+b") as handle:
        handle.write(b"\1\2\3\4")
    code, _, err = run_cli(capsys, "run", out, "-i", "synthetic://driving?frames=1&size=64x64")
    assert_one_line_error(code, err, "model.onnx.data", "sha256")


def test_interrupted_export_leaves_no_bundle(tmp_path, monkeypatch):
    import edgeseg.export.torch_export as torch_export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch_export, "measure_parity", interrupted)
    out = tmp_path / "never"
    with pytest.raises(KeyboardInterrupt):
        export(
            "unet",
            out,
            ExportOptions(size=(64, 64), classes=numbered_classes(3), model_options={"width": 4}, progress=False),
        )
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


# -- bad input: one line, non-zero exit, nothing written -------------------------------------------
def test_unknown_zoo_name(tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "segformer", "-o", tmp_path / "x", "--classes", "3")
    assert_one_line_error(code, err, "unknown zoo model 'segformer'", "unet")
    assert not (tmp_path / "x").exists()


def test_size_the_stride_does_not_divide(tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "fcn8s", "-o", tmp_path / "x", "--size", "100x100", "--classes", "3")
    assert_one_line_error(code, err, "--size 100x100", "divisible by 32", "96x96")
    assert not (tmp_path / "x").exists()


def test_pspnet_refuses_dynamic_size(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "export", "pspnet", "-o", tmp_path / "x", "--size", "96x96", "--classes", "3", "--dynamic-size"
    )
    assert_one_line_error(code, err, "fixed input size")


def test_module_that_does_not_import(tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "no_such_pkg.models:net", "-o", tmp_path / "x")
    assert_one_line_error(code, err, "cannot import module 'no_such_pkg.models'")


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ("user_models:not_a_model", "not a torch.nn.Module"),
        ("user_models:missing", "has no function 'missing'"),
        ("user_models:broken", "weights server unreachable"),
    ],
)
def test_module_function_that_gives_no_model(spec, fragment, tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", spec, "-o", tmp_path / "x", "--size", "32x32")
    assert_one_line_error(code, err, fragment)


@pytest.mark.parametrize("value", ["257", "100000000000"])
def test_more_classes_than_a_uint8_class_map_holds(value, tmp_path, capsys):
    """A count is refused before any per-class list is built: hypothesis found `--classes` with many digits filling
    24 GB of memory."""
    code, _, err = run_cli(capsys, "export", "unet", "-o", tmp_path / "x", "--classes", value)
    assert_one_line_error(code, err, f"--classes {value}", "at most 256 classes")


def test_names_file_with_more_classes_than_a_uint8_class_map_holds(tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"c{i}\n" for i in range(257)))
    code, _, err = run_cli(capsys, "export", "unet", "-o", tmp_path / "x", "--classes", names)
    assert_one_line_error(code, err, "lists 257 classes", "at most 256")


def test_weights_with_wrong_shapes(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    torch.save(build_model("unet", 5, width=4).state_dict(), weights)
    code, _, err = run_cli(
        capsys,
        "export",
        "unet",
        "-o",
        tmp_path / "x",
        *TINY,
        "--weights",
        weights,
    )
    assert_one_line_error(code, err, "do not fit the model", "size mismatch", "--classes")
    assert not (tmp_path / "x").exists()


def test_weights_file_that_is_not_a_state_dict(tmp_path, capsys):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"definitely not a checkpoint")
    code, _, err = run_cli(capsys, "export", "unet", "-o", tmp_path / "x", "--classes", "3", "--weights", weights)
    assert_one_line_error(code, err, "cannot load weights")


def test_onnx_that_does_not_parse(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a protobuf")
    code, _, err = run_cli(capsys, "export", bad, "-o", tmp_path / "x")
    assert_one_line_error(code, err, "not a valid ONNX model")
    assert not (tmp_path / "x").exists()


def test_zoo_model_without_classes(tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "unet", "-o", tmp_path / "x")
    assert_one_line_error(code, err, "--classes")


def test_existing_output_is_not_overwritten_without_force(tiny_bundle, capsys):
    before = (tiny_bundle / "manifest.json").read_text()
    code, _, err = run_cli(capsys, "export", "unet", "-o", tiny_bundle, "--size", "64x64", "--classes", "3")
    assert_one_line_error(code, err, "already exists", "--force")
    assert (tiny_bundle / "manifest.json").read_text() == before


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "export", "unet", "-o", blocker / "bundle", *TINY)
    assert_one_line_error(code, err, "cannot write bundle")


def test_model_option_without_a_value(tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "unet", "-o", tmp_path / "x", "--classes", "3", "--arg", "width")
    assert_one_line_error(code, err, "--arg takes key=value")


# -- opset 13: JetPack 4.6's TensorRT 8.2 parses up to it -----------------------------------------------------------
SEMANTIC_FAMILIES = ["fcn32s", "fcn16s", "fcn8s", "unet", "deeplabv3", "deeplabv3plus", "pspnet", "lraspp"]


@pytest.mark.parametrize("family", SEMANTIC_FAMILIES)
def test_every_family_that_can_exports_at_opset_13_and_builds_on_tensorrt_8_2(family, tmp_path, capsys):
    """Float ends (8.2 has no UINT8): every semantic family builds on TensorRT 8.2."""
    from edgeseg.engines.check import check_bundle

    size = "96x96" if family == "pspnet" else "64x64"
    float_ends = ("--no-fuse-preprocess", "--no-fuse-argmax")
    code, out, err = run_cli(capsys, "export", family, "-o", tmp_path / family, "--opset", "13", "--size", size,
                             "--classes", "3", "--arg", "width=4", *float_ends)  # fmt: skip
    assert code == 0, err
    model = onnx.load(str(tmp_path / family / "model.onnx"))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    assert Bundle.load(tmp_path / family).select("onnx", "fp32", targets=("any",)).extra["opset"] == 13
    verdicts = check_bundle(tmp_path / family, ["8.2"])
    assert verdicts and all(v.builds for v in verdicts), [(v.artifact, v.problems) for v in verdicts]


def test_the_hourglass_exports_at_opset_13_but_cannot_build_on_tensorrt_8_2(tmp_path, capsys):
    """The hourglass takes uint8 frames only (8.2 has no UINT8) and its fused decoder's peak % width is ONNX Mod,
    which 8.2-GA's table lacks: the export works, and its verdict and edgeseg check say why 8.2 will not build it."""
    from edgeseg.engines.check import check_bundle

    code, out, err = run_cli(capsys, "export", "hourglass", "-o", tmp_path / "h", "--opset", "13", "--size", "64x64",
                             "--classes", "2", "--arg", "width=4")  # fmt: skip
    assert code == 0, err
    assert "will not build on TensorRT 8.2 (JetPack 4.6): network input 'frame' is UINT8" in out
    (verdict,) = check_bundle(tmp_path / "h", ["8.2"])
    assert any("Mod is not supported by TensorRT 8.2" in f.line() for f in verdict.problems)
    assert all(v.builds for v in check_bundle(tmp_path / "h", ["8.5", "10.3"]))


def test_mask_rcnn_cannot_be_exported_at_opset_13_and_says_why_in_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "maskrcnn", "-o", tmp_path / "m", "--opset", "13", "--size", "64x64",
                           "--classes", "3", "--arg", "width=4")  # fmt: skip
    assert_one_line_error(code, err, "maskrcnn cannot be exported at opset 13: its RoiAlign needs opset 16")
    assert "TensorRT 8.2 (JetPack 4.6) has no RoiAlign at all; export it with --opset 16 or more" in err
    assert not (tmp_path / "m").exists()
