"""Deployments: DeepStream and Triton configs from a bundle, and `--backend triton://` against a real Triton server."""

from __future__ import annotations

import configparser
import dataclasses
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from conftest import TINY, assert_one_line_error, free_ports, recipe_bundle, run_cli
from triton_server import REPO, require_server_venv, start_server, stop_server, wait_ready

from edgeseg.bundle import Bundle
from edgeseg.runtime.sources import open_source
from edgeseg.runtime.tensors import frames_to_input


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    from edgeseg.cli import main

    bundle = recipe_bundle(tmp_path_factory, "demo-medical")  # the shared export, calibrated here
    assert (
        main(
            [
                "calibrate",
                str(bundle),
                "--data",
                "synthetic://medical?seed=3000&frames=40&size=320x240",
                "--count",
                "16",
                "--eval-count",
                "8",
                "--method",
                "minmax",
            ]
        )
        == 0
    )
    return bundle


# -- Triton model repository ------------------------------------------------------------------------
def parse_config(path: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_triton_repository_parses_with_tritons_own_protobufs(calibrated, tmp_path, precision, capsys):
    out = tmp_path / "repo"
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "triton", "-o", out, "--precision", precision)
    assert code == 0, err
    config = parse_config(out / "demo_medical" / "config.pbtxt")
    assert config.name == "demo_medical" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 0  # the demo graph has a fixed batch of 1
    (graph_in,), (graph_out,) = config.input, config.output
    assert (
        graph_in.name == "frame" and graph_in.data_type == 2 and list(graph_in.dims) == [1, 240, 320, 3]
    )  # TYPE_UINT8
    assert graph_out.name == "classes" and list(graph_out.dims) == [1, 240, 320]
    assert config.instance_group[0].kind == 1  # KIND_GPU
    model = out / "demo_medical" / "1" / "model.onnx"
    expected = {"fp32": "model.onnx", "int8": "model.int8-tensorrt.onnx"}[precision]
    assert model.read_bytes() == (calibrated / expected).read_bytes()


def test_triton_dynamic_batching_for_a_dynamic_batch_graph(tmp_path, capsys):
    bundle = tmp_path / "dyn"
    assert (
        run_cli(
            capsys,
            "export",
            "lraspp",
            "-o",
            bundle,
            *TINY,
            "--dynamic-batch",
        )[0]
        == 0
    )
    assert (
        run_cli(
            capsys,
            "deploy",
            bundle,
            "--target",
            "triton",
            "-o",
            tmp_path / "repo",
            "--max-batch",
            "16",
            "--queue-delay-us",
            "250",
            "--instances",
            "2",
            "--instance-kind",
            "cpu",
        )[0]
        == 0
    )
    config = parse_config(tmp_path / "repo" / "lraspp" / "config.pbtxt")
    assert config.max_batch_size == 16 and list(config.input[0].dims) == [64, 64, 3]
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert config.instance_group[0].count == 2 and config.instance_group[0].kind == 2  # KIND_CPU


# -- DeepStream ------------------------------------------------------------------------------------
def test_deepstream_configs_and_plain_io_graph(calibrated, tmp_path, capsys):
    out = tmp_path / "ds"
    code, _, err = run_cli(
        capsys, "deploy", calibrated, "--target", "deepstream", "-o", out, "--streams", "4", "--precision", "int8"
    )
    assert code == 0, err
    infer = configparser.ConfigParser()
    infer.read(out / "config_infer_primary_edgeseg.txt")
    props = infer["property"]
    assert props["network-type"] == "2" and props["network-mode"] == "1" and props["batch-size"] == "4"
    assert (
        props["infer-dims"] == "3;240;320"
        and props["num-detected-classes"] == "5"
        and props["model-color-format"] == "0"
    )
    # nvinfer passes raw 0-255 RGB planes; the exact per-channel normalisation is the graph's own Sub and Mul
    assert props["net-scale-factor"] == "1" and props["offsets"] == "0;0;0"
    assert (out / "labels.txt").read_text().split() == ["background", "tissue", "lesion", "instrument", "specular"]
    app = configparser.ConfigParser()
    app.read(out / "deepstream_app_config.txt")
    assert [s for s in app.sections() if s.startswith("source")] == [f"source{i}" for i in range(4)]
    assert (
        app["streammux"]["batch-size"] == "4"
        and app["primary-gie"]["config-file"] == "config_infer_primary_edgeseg.txt"
    )
    assert (
        app["tiled-display"]["rows"] == "2"
        and app["tiled-display"]["columns"] == "2"
        and app["segvisual"]["enable"] == "1"
    )
    # The graph nvinfer gets: 0-255 float RGB planes in, per-class probabilities out; same answer as the bundle.
    session = ort.InferenceSession(str(out / props["onnx-file"]), providers=["CPUExecutionProvider"])
    graph_in, graph_out = session.get_inputs()[0], session.get_outputs()[0]
    assert (
        graph_in.type == "tensor(float)"
        and graph_in.shape[1:] == [3, 240, 320]
        and graph_out.name == props["output-blob-names"]
    )
    bundle = Bundle.load(calibrated)
    frame = next(iter(open_source("synthetic://medical?seed=9&frames=1&size=320x240"))).image
    planes = rgb_planes([frame], bundle)
    logits = session.run(None, {graph_in.name: planes})[0]
    first = [n.op_type for n in onnx_load(out / props["onnx-file"]).graph.node[:3]]
    assert first[:2] == ["Sub", "Mul"] and first[2] != "Mul"  # one Sub and one Mul, then the network
    # nvinfer's graph is the FP32 one at every precision (network-mode sets the precision): the bundle's FP32 answer
    reference = ort.InferenceSession(str(calibrated / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = reference.run(None, {"frame": frames_to_input([frame], bundle.input)})[0]
    assert logits.shape == (1, 5, 240, 320) and (logits.argmax(1) == expected).mean() >= 0.9999


def onnx_load(path: Path):
    import onnx

    return onnx.load(str(path))


def rgb_planes(frames: list, bundle: Bundle) -> np.ndarray:
    """What nvinfer passes with net-scale-factor=1, offsets=0;0;0 and model-color-format=0: raw 0-255 RGB planes."""
    size = dataclasses.replace(bundle.input, fused_preprocess=True, color_order="RGB")
    return frames_to_input(frames, size).transpose(0, 3, 1, 2).astype(np.float32)


def deepstream_keys() -> dict:
    import json

    return json.loads((REPO / "edgeseg" / "deploy" / "deepstream_keys.json").read_text())


def assert_known_keys(path: Path, groups: dict) -> None:
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read(path)
    for section in parsed.sections():
        group = section.rstrip("0123456789")
        assert group in groups, (path.name, section)
        assert set(parsed[section]) <= set(groups[group]), (
            path.name,
            section,
            set(parsed[section]) - set(groups[group]),
        )


@pytest.mark.parametrize("streams", [1, 4])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_deepstream_outputs_load_as_generated(calibrated, tmp_path, capsys, precision, streams):
    """Every graph passes onnx.checker's full check and runs at the stream batch; nvinfer gets the FP32 graph with a
    Softmax at every precision; INT8 comes with TensorRT calibration caches holding the Q/DQ graph's scales; every
    config key is one DeepStream parses."""
    import onnx

    from edgeseg.deploy.calibration_cache import activation_scales, parse_cache

    out = tmp_path / "ds"
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "deepstream", "-o", out, "--streams",
                           str(streams), "--precision", precision)  # fmt: skip
    assert code == 0, err
    graphs = sorted(out.glob("*.onnx"))
    # INT8 at batch 1 also gets the Q/DQ graph for an engine built on the device (the bundle's batch is fixed at 1)
    explicit = ["edgeseg_demo_medical_int8_qdq.onnx"] if precision == "int8" and streams == 1 else []
    assert [g.name for g in graphs] == ["edgeseg_demo_medical.onnx", *explicit]
    onnx.checker.check_model(str(graphs[0]), full_check=True)
    model = onnx.load(str(graphs[0]))
    assert {t.data_type for t in model.graph.initializer} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear", "ArgMax") for n in model.graph.node)
    session = ort.InferenceSession(str(graphs[0]), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).normal(0, 1, (streams, 3, 240, 320)).astype(np.float32)
    (probabilities,) = session.run(None, {session.get_inputs()[0].name: batch})
    assert probabilities.shape == (streams, 5, 240, 320)
    assert np.allclose(probabilities.sum(1), 1.0, atol=1e-4)  # a Softmax: segmentation-threshold is a probability
    infer = configparser.ConfigParser(interpolation=None)
    infer.read(out / "config_infer_primary_edgeseg.txt")
    props = infer["property"]
    assert props["network-mode"] == {"fp32": "0", "int8": "1", "fp16": "2"}[precision]
    assert props["batch-size"] == str(streams) and props["output-blob-names"] == "probabilities"
    assert_known_keys(out / "config_infer_primary_edgeseg.txt", deepstream_keys()["nvinfer"])
    known = deepstream_keys()
    assert_known_keys(out / "deepstream_app_config.txt", known["deepstream_app"] | known["deepstream_app_from_6_3"])
    app = configparser.ConfigParser(interpolation=None)
    app.read(out / "deepstream_app_config.txt")
    assert app["streammux"]["batch-size"] == str(streams) and "original-background" not in app["segvisual"]
    engine = f"{explicit[0] if explicit else graphs[0].name}_b{streams}_gpu0_{precision}.engine"
    assert props["model-engine-file"] == engine  # where nvinfer looks, and where `edgeseg build FILE.onnx` writes
    if precision != "int8":
        assert "int8-calib-file" not in props and not list(out.glob("*.cache"))
        return
    assert props["int8-calib-file"] == "calibration_jp6.cache"
    if explicit:
        assert_explicit_int8_graph(out / explicit[0], calibrated, streams)
    expected = activation_scales(onnx.load(str(calibrated / "model.int8-tensorrt.onnx")))
    graph_tensors = {name for node in model.graph.node for name in node.output} | {model.graph.input[0].name}
    assert len(expected) > 20 and set(expected) <= graph_tensors  # the scales name tensors of nvinfer's graph
    # NV_TENSORRT_VERSION: 8.x major*1000+minor*100+patch, 10.x and later major*10000+minor*100+patch
    for jetpack, version in (("4", "8201"), ("5", "8502"), ("6.0", "8602"), ("6", "100300"), ("7", "101303")):
        header, scales = parse_cache((out / f"calibration_jp{jetpack}.cache").read_text())
        assert header == f"TRT-{version}-EntropyCalibration2"
        # the Q/DQ graph's scales, float32 bits written and read back exactly, and more; every name one of the graph's
        assert {name: scales[name] for name in expected} == expected and set(scales) <= graph_tensors
        assert len(scales) > len(expected) and "probabilities" not in scales


# -- one calibration cache per JetPack release, its header NVIDIA's version number ---------------------------------
@pytest.mark.parametrize("version", ["8.6.1", "10.3.0", "10.13.3.9", "10.16.1.11", "11.4.0.106"])
def test_cache_header_is_the_number_nvidias_bindings_pass_to_libnvinfer(version, tmp_path):
    """The real bindings of each TensorRT (tests/real_tensorrt.py) pass NV_TENSORRT_VERSION to libnvinfer's
    createInferBuilder_INTERNAL, as NvInfer.h's inline createInferBuilder does: a stub libnvinfer that prints its
    argument reads NVIDIA's own formula for that version, and the header for the version in the bindings'
    __version__ must carry that number."""
    import os

    from real_tensorrt import STUB_SOURCE, environment, major, skip_reason

    from edgeseg.deploy.calibration_cache import header

    reason = skip_reason(version)
    if reason:
        pytest.skip(reason)
    recording = STUB_SOURCE.replace(
        "void *createInferBuilder_INTERNAL(void *l, int v) { return NULL; }",
        'void *createInferBuilder_INTERNAL(void *l, int v) { fprintf(stderr, "NV_TENSORRT_VERSION=%d\\n", v); '
        "return NULL; }",
    )
    assert recording != STUB_SOURCE
    (tmp_path / "stub.c").write_text("#include <stdio.h>\n" + recording)
    names = ["libnvinfer", "libnvinfer_plugin", "libnvonnxparser"] + (["libnvparsers"] if major(version) < 10 else [])
    for name in names:
        soname = f"{name}.so.{major(version)}"
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / soname), f"-Wl,-soname,{soname}",
                        str(tmp_path / "stub.c")], check=True, capture_output=True)  # fmt: skip
    env = environment(version)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(tmp_path), env["LD_LIBRARY_PATH"]])
    program = "import tensorrt\ntry:\n    tensorrt.Builder(tensorrt.Logger())\nexcept TypeError:\n    pass\n"
    program += "print(tensorrt.__version__)"
    result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    number = result.stderr.split("NV_TENSORRT_VERSION=")[1].split()[0]
    installed = tuple(int(part) for part in result.stdout.strip().split(".")[:3])
    assert header(installed) == f"TRT-{number}-EntropyCalibration2"


def test_a_cache_per_jetpack_release_and_the_one_the_config_names(calibrated, tmp_path, capsys):
    """--jetpack 4.6 / 5.1 / 6.0 / 6.1 / 6.2 / 7 (and 4, 5, 6) name the cache of that release's TensorRT."""
    from edgeseg.deploy.calibration_cache import cache_name, jetpack_key

    names = {value: cache_name(jetpack_key(value)) for value in ("4", "4.6", "5", "5.1", "6.0", "6", "6.1", "6.2", "7")}
    caches = {"4": "jp4", "4.6": "jp4", "5": "jp5", "5.1": "jp5", "6.0": "jp6.0", "6": "jp6", "6.1": "jp6",
              "6.2": "jp6", "7": "jp7"}  # fmt: skip
    assert names == {value: f"calibration_{cache}.cache" for value, cache in caches.items()}
    for jetpack in ("6.0", "6.2"):
        out = tmp_path / jetpack
        code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "deepstream", "-o", out, "--precision", "int8",
                               "--jetpack", jetpack)  # fmt: skip
        assert code == 0, err
        infer = configparser.ConfigParser(interpolation=None)
        infer.read(out / "config_infer_primary_edgeseg.txt")
        assert infer["property"]["int8-calib-file"] == names[jetpack]
        assert sorted(p.name for p in out.glob("*.cache")) == sorted(set(names.values()))
    text = (tmp_path / "6.0" / "config_infer_primary_edgeseg.txt").read_text()
    assert "calibration_jp6.0.cache (JetPack 6.0, TensorRT 8.6.2)" in text
    assert "calibration_jp6.cache (JetPack 6.1/6.2, TensorRT 10.3.0)" in text
    # demo-medical is exported at opset 17, which JetPack 4.6's TensorRT 8.2 cannot parse: one line that says what to do
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "deepstream", "-o", tmp_path / "4.6",
                           "--jetpack", "4.6")  # fmt: skip
    assert_one_line_error(code, err, "opset 17: TensorRT 8.2's parser reads opset 7 to 13; export with --opset 13")
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "deepstream", "-o", tmp_path / "x", "--jetpack",
                           "6.3")  # fmt: skip
    assert code == 2 and "invalid choice: '6.3'" in err and err.count("\n") == 1


def test_jetpack_4_deepstream_6_0_1(tmp_path, capsys):
    """--jetpack 4: what DeepStream 6.0.1 on JetPack 4.6 reads: an opset-13 graph that passes TensorRT 8.2's rules, the
    8.2.1 cache named, no [segvisual] group (6.3+), no enc-type, nvegltransform before the EGL sink, trtexec (edgeseg
    does not run on 4.6's Python 3.6) for the explicit INT8 engine."""
    import onnx

    from edgeseg.deploy.calibration_cache import parse_cache
    from edgeseg.engines.check import check_file

    bundle = tmp_path / "b"
    code, _, err = run_cli(capsys, "export", "unet", "-o", bundle, "--opset", "13", *TINY)
    assert code == 0, err
    code, _, err = run_cli(capsys, "calibrate", bundle, "--data", "synthetic://driving?seed=3&frames=8&size=64x64",
                           "--count", "4", "--eval-count", "2", "--method", "minmax")  # fmt: skip
    assert code == 0, err
    out = tmp_path / "ds"
    code, _, err = run_cli(capsys, "deploy", bundle, "--target", "deepstream", "-o", out, "--precision", "int8",
                           "--jetpack", "4", "--encoder", "hardware")  # fmt: skip
    assert code == 0, err
    for graph in sorted(out.glob("*.onnx")):
        assert onnx.load(str(graph)).opset_import[0].version == 13
        precision = "int8" if "qdq" in graph.name else "fp32"
        assert all(v.builds for v in check_file(graph, ["8.2"], precision)), graph
    infer = configparser.ConfigParser(interpolation=None)
    infer.read(out / "config_infer_primary_edgeseg.txt")
    assert infer["property"]["int8-calib-file"] == "calibration_jp4.cache"
    assert parse_cache((out / "calibration_jp4.cache").read_text())[0] == "TRT-8201-EntropyCalibration2"
    text = (out / "config_infer_primary_edgeseg.txt").read_text()
    assert "#   /usr/src/tensorrt/bin/trtexec --onnx=edgeseg_unet_int8_qdq.onnx --int8 --fp16 --saveEngine=" in text
    assert_known_keys(out / "config_infer_primary_edgeseg.txt", deepstream_keys()["nvinfer"])
    assert_known_keys(out / "deepstream_app_config.txt", deepstream_keys()["deepstream_app"])  # no 6.3+ group
    app = configparser.ConfigParser(interpolation=None)
    app.read(out / "deepstream_app_config.txt")
    assert "segvisual" not in app and "enc-type" not in app["sink1"]
    script = (out / "deepstream_overlay.sh").read_text()
    assert "nvvideoconvert ! nvegltransform ! nveglglessink" in script
    assert "original-background=" not in script and "nvsegvisual batch-size=1 width=64 height=64 !" in script


def assert_explicit_int8_graph(path: Path, bundle: Path, streams: int, scene: str = "medical") -> None:
    """The Q/DQ graph for the engine: full check, Q/DQ nodes with the bundle's scales, float input, a Softmax out,
    the same classes as the bundle's INT8 graph at the stream batch, on frames of the synthetic `scene`."""
    import onnx

    from edgeseg.deploy.calibration_cache import activation_scales

    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    reference_graph = onnx.load(str(bundle / "model.int8-tensorrt.onnx"))
    assert activation_scales(model) == activation_scales(reference_graph) and len(activation_scales(model)) > 10
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph_in = session.get_inputs()[0]
    assert graph_in.type == "tensor(float)" and session.get_outputs()[0].name == "probabilities"
    meta = Bundle.load(bundle).input
    height, width = meta.size
    frames = [f.image for f in open_source(f"synthetic://{scene}?seed=9&frames={streams}&size={width}x{height}")]
    (probabilities,) = session.run(None, {graph_in.name: rgb_planes(frames, Bundle.load(bundle))})
    reference = ort.InferenceSession(str(bundle / "model.int8-tensorrt.onnx"), providers=["CPUExecutionProvider"])
    expected = np.concatenate([reference.run(None, {"frame": frames_to_input([f], meta)})[0] for f in frames])
    assert probabilities.shape[0] == streams and np.allclose(probabilities.sum(1), 1.0, atol=1e-4)
    assert (probabilities.argmax(1) == expected).mean() >= 0.999


def test_int8_engine_graph_for_several_streams_from_a_dynamic_batch_bundle(tmp_path_factory, tmp_path, capsys):
    """A bundle exported with --dynamic-batch and calibrated gives the Q/DQ graph at any stream count; its engine name
    carries the stream batch."""
    bundle = recipe_bundle(tmp_path_factory, "unet-dynamic-batch")
    code, _, err = run_cli(capsys, "calibrate", bundle, "--data", "synthetic://driving?seed=3000&frames=12&size=64x64",
                           "--count", "8", "--eval-count", "4", "--method", "minmax")  # fmt: skip
    assert code == 0, err
    out = tmp_path / "ds"
    code, _, err = run_cli(capsys, "deploy", bundle, "--target", "deepstream", "-o", out, "--streams", "3",
                           "--precision", "int8")  # fmt: skip
    assert code == 0, err
    assert_explicit_int8_graph(out / "edgeseg_unet_int8_qdq.onnx", bundle, 3, scene="driving")
    infer = configparser.ConfigParser(interpolation=None)
    infer.read(out / "config_infer_primary_edgeseg.txt")
    assert infer["property"]["model-engine-file"] == "edgeseg_unet_int8_qdq.onnx_b3_gpu0_int8.engine"
    assert (
        "edgeseg build edgeseg_unet_int8_qdq.onnx --batch 1,3,3"
        in (out / "config_infer_primary_edgeseg.txt").read_text()
    )


def test_fixed_batch_int8_for_several_streams_says_why_there_is_no_engine_graph(calibrated, tmp_path, capsys):
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "deepstream", "-o", tmp_path / "ds", "--streams",
                           "2", "--precision", "int8")  # fmt: skip
    assert code == 0, err
    assert "no INT8 engine graph for --streams 2: the bundle's batch is fixed at 1" in err
    assert not list((tmp_path / "ds").glob("*_int8_qdq.onnx"))


# NVIDIA's elements -> software elements that take the same place in the pipeline (none of them segments).
OVERLAY_STAND_INS = {
    r"nvstreammux name=mux [^!]*!": "compositor name=mux !",
    r"nvinfer [^!]*!": "identity !",
    r"nvsegvisual [^!]*!": "identity !",
    r"nvmultistreamtiler [^!]*!": "identity !",
    r"nvvideoconvert": "videoconvert",
}


@pytest.mark.skipif(not shutil.which("gst-launch-1.0"), reason="needs gst-launch-1.0 (make test installs it)")
def test_overlay_pipeline_runs_with_software_stand_ins(calibrated, sample_video, tmp_path, capsys):
    """deepstream_overlay.sh as generated, NVIDIA's elements swapped for software stand-ins that do not segment:
    the shell logic, the pipeline's syntax and pads, and the sources, encoder and muxer (real elements, real
    properties: gst-launch-1.0 stops at an unknown one) run and write a video that decodes. NVIDIA's elements'
    properties are checked against deepstream_keys.json instead."""
    import json
    import re

    out = tmp_path / "ds"
    uri = sample_video.resolve().as_uri()
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "deepstream", "-o", out, "-i", uri, "-i", uri,
                           "--precision", "fp16")  # fmt: skip
    assert code == 0, err
    script = (out / "deepstream_overlay.sh").read_text()
    assert "nvsegvisual batch-size=2 width=320 height=240 original-background=true" in script
    known = json.loads((REPO / "edgeseg/deploy/deepstream_keys.json").read_text())["gst_elements"]
    elements = re.findall(r'\b(nv[a-z0-9]+)((?: [a-z-]+=[^\s!\\"]+)*)', script)
    assert {name for name, _ in elements} == {"nvstreammux", "nvinfer", "nvsegvisual", "nvmultistreamtiler",
                                              "nvvideoconvert", "nv3dsink"}  # fmt: skip
    for element in elements:
        assert {setting.split("=")[0] for setting in element[1].split()} - {"name"} <= set(known[element[0]]), element
    for nvidia, stand_in in OVERLAY_STAND_INS.items():
        script = re.sub(nvidia, stand_in, script)
    (out / "stand_in.sh").write_text(script)
    result = subprocess.run(["sh", str(out / "stand_in.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    video = cv2.VideoCapture(str(out / "edgeseg_overlay.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames >= 68  # tree.avi has 68 frames; the compositor stand-in may repeat some


def test_overlay_pipeline_check_refuses_a_property_an_element_lacks():
    from edgeseg.deploy.deepstream import check_elements
    from edgeseg.errors import EdgesegError

    check_elements(["nvsegvisual batch-size=1 original-background=true alpha=0.5", "x264enc anything=1"])
    with pytest.raises(EdgesegError, match="set \\['blend'\\] on nvsegvisual"):
        check_elements(["nvsegvisual batch-size=1 blend=true"])


def test_deepstream_sources_live_and_encoder(calibrated, tmp_path, capsys):
    out = tmp_path / "ds"
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "deepstream", "-o", out, "-i",
                           "rtsp://cam-1/stream", "-i", "rtsp://cam-2/stream", "--precision", "fp32")  # fmt: skip
    assert code == 0, err
    app = configparser.ConfigParser(interpolation=None)
    app.read(out / "deepstream_app_config.txt")
    assert [app[f"source{i}"]["uri"] for i in range(2)] == ["rtsp://cam-1/stream", "rtsp://cam-2/stream"]
    assert app["streammux"]["live-source"] == "1" and app["streammux"]["batch-size"] == "2"
    assert app["sink1"]["enc-type"] == "1"  # software x264: works where the GPU has no NVENC
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "deepstream", "-o", tmp_path / "x", "-i",
                           "rtsp://cam-1/stream", "--streams", "3")  # fmt: skip
    assert_one_line_error(code, err, "--streams 3 with 1 -i sources")


def test_several_streams_need_a_model_that_can_be_exported_again(tmp_path, capsys):
    """An imported ONNX with a fixed batch cannot be given a dynamic batch by editing it: one line."""
    import onnx
    import torch

    from edgeseg.models import build_model

    source = tmp_path / "fixed.onnx"
    torch.onnx.export(build_model("lraspp", 3, width=4), (torch.rand(1, 3, 64, 64),), str(source), opset_version=17,
                      dynamo=False, input_names=["input"], output_names=["logits"])  # fmt: skip
    assert onnx.load(str(source)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    bundle = tmp_path / "imported"
    assert run_cli(capsys, "export", source, "-o", bundle)[0] == 0
    code, _, err = run_cli(capsys, "deploy", bundle, "--target", "deepstream", "-o", tmp_path / "ds", "--streams", "4")
    assert_one_line_error(code, err, "--streams 4 needs a graph with a dynamic batch", "imported from ONNX")


def ort_dims(path: Path) -> tuple[list, list]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def dims(values):
        return [[d if isinstance(d, int) else -1 for d in v.shape] for v in values]

    return dims(session.get_inputs()), dims(session.get_outputs())


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_triton_dims_are_exactly_what_onnx_runtime_reports(calibrated, tmp_path, capsys, precision):
    """Triton's ONNX Runtime backend compares a config's dims with the model's, dim for dim (a -1 matches only -1)."""
    out = tmp_path / "repo"
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "triton", "-o", out, "--precision", precision,
                           "--ort-tensorrt")  # fmt: skip
    assert code == 0, err
    config = parse_config(out / "demo_medical" / "config.pbtxt")
    inputs, outputs = ort_dims(out / "demo_medical" / "1" / "model.onnx")
    assert [list(t.dims) for t in config.input] == inputs and [list(t.dims) for t in config.output] == outputs
    assert outputs == [[1, 240, 320]]
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert [a.name for a in accelerator] == ["tensorrt"]
    (warmup,) = config.model_warmup
    assert warmup.batch_size == 1 and list(warmup.inputs["frame"].dims) == [1, 240, 320, 3]


@pytest.mark.parametrize("flags", [(), ("--no-fuse-argmax",)])
def test_triton_dims_for_a_dynamic_batch_graph(tmp_path, capsys, flags):
    bundle = tmp_path / "dyn"
    code, _, err = run_cli(capsys, "export", "user_models:resize_to_input_net", "-o", bundle, "--size", "48x64",
                           "--dynamic-batch", *flags)  # fmt: skip
    assert code == 0, err
    out = tmp_path / "repo"
    assert run_cli(capsys, "deploy", bundle, "--target", "triton", "-o", out)[0] == 0
    config = parse_config(out / "user_models_resize_to_input_net" / "config.pbtxt")
    inputs, outputs = ort_dims(out / "user_models_resize_to_input_net" / "1" / "model.onnx")
    assert config.max_batch_size > 0
    assert [[-1, *t.dims] for t in config.input] == inputs and [[-1, *t.dims] for t in config.output] == outputs
    assert outputs == ([[-1, 48, 64]] if not flags else [[-1, 5, 48, 64]])


# -- bad input -------------------------------------------------------------------------------------
def test_unknown_target(calibrated, tmp_path, capsys):
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "kubernetes", "-o", tmp_path / "x")
    assert_one_line_error(code, err, "unknown --target 'kubernetes'", "deepstream, triton")


def test_existing_non_empty_output_needs_force(calibrated, tmp_path, capsys):
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "triton", "-o", out)
    assert_one_line_error(code, err, "exists and is not empty", "--force")
    assert (out / "keep.txt").read_text() == "mine"
    assert run_cli(capsys, "deploy", calibrated, "--target", "triton", "-o", out, "--force")[0] == 0
    assert not (out / "keep.txt").exists()


@pytest.mark.parametrize("target", ["triton", "deepstream"])
def test_a_module_function_bundle_deploys_under_a_name_of_letters_digits_and_underscores(tmp_path, capsys, target):
    bundle = tmp_path / "b"
    assert run_cli(capsys, "export", "user_models:tiny_net", "-o", bundle, "--size", "32x48")[0] == 0
    assert Bundle.load(bundle).manifest["model"]["name"] == "user_models:tiny_net"
    code, out, err = run_cli(capsys, "deploy", bundle, "--target", target, "-o", tmp_path / "out")
    assert code == 0, err
    expected = "user_models_tiny_net" if target == "triton" else "edgeseg_user_models_tiny_net"
    assert f"deployed as '{expected}'" in err
    written = [Path(line.removeprefix("wrote ")) for line in out.splitlines() if line.startswith("wrote ")]
    assert written and all(p.is_file() for p in written)
    for path in written:
        relative = path.relative_to(tmp_path / "out")
        assert all(not set(part) - set("abcdefghijklmnopqrstuvwxyz0123456789_.") for part in relative.parts), path
    if target == "triton":
        assert parse_config(tmp_path / "out" / expected / "config.pbtxt").name == expected


def test_deploy_name_that_triton_and_deepstream_cannot_use(calibrated, tmp_path, capsys):
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "triton", "-o", tmp_path / "x", "--name", "a.b:c")
    assert_one_line_error(code, err, "--name 'a.b:c'", "letters, digits and _", "use --name a_b_c")


def test_unreachable_triton_server(calibrated, capsys):
    (port,) = free_ports(1)
    code, _, err = run_cli(
        capsys,
        "run",
        calibrated,
        "-i",
        "synthetic://medical?frames=2&size=320x240",
        "--backend",
        f"triton://127.0.0.1:{port}/demo_medical",
    )
    assert_one_line_error(code, err, f"Triton at 127.0.0.1:{port} is unreachable")


# -- a real Triton server on loopback (tests/triton_server.py) ---------------------------------------------
@pytest.fixture(scope="module")
def triton(calibrated):
    """tritonserver (nvidia-pytriton) serving the bundle's FP32 ONNX, and a second model whose input does not match."""
    require_server_venv()
    ports = free_ports(6)
    servers = [
        ("demo_medical", ports[0], start_server(calibrated / "model.onnx", "demo_medical", ports[0:3])),
        (
            "wrong_shape",
            ports[3],
            start_server(calibrated / "model.onnx", "wrong_shape", ports[3:6], "--frame-shape", "120,160,3"),
        ),
    ]
    try:
        for name, grpc, process in servers:
            wait_ready(name, grpc, process)
        yield {name: grpc for name, grpc, _ in servers}
    finally:
        for _, _, process in servers:
            stop_server(process)


def test_run_through_triton_matches_local_onnxruntime(calibrated, triton, tmp_path, capsys):
    source = "synthetic://medical?seed=9&frames=8&size=320x240"
    remote, local = tmp_path / "remote", tmp_path / "local"
    code, stdout, err = run_cli(
        capsys,
        "run",
        calibrated,
        "-i",
        source,
        "--backend",
        f"triton://127.0.0.1:{triton['demo_medical']}/demo_medical",
        "-o",
        remote,
        "--save-mask",
    )
    assert code == 0, err
    assert "triton 127.0.0.1" in stdout
    assert (
        run_cli(
            capsys,
            "run",
            calibrated,
            "-i",
            source,
            "--backend",
            "onnxruntime",
            "--precision",
            "fp32",
            "-o",
            local,
            "--save-mask",
        )[0]
        == 0
    )
    remote_masks, local_masks = sorted((remote / "masks").glob("*.png")), sorted((local / "masks").glob("*.png"))
    assert len(remote_masks) == len(local_masks) == 8
    for a, b in zip(remote_masks, local_masks):
        assert np.array_equal(cv2.imread(str(a), cv2.IMREAD_UNCHANGED), cv2.imread(str(b), cv2.IMREAD_UNCHANGED))


def test_model_the_server_does_not_have(calibrated, triton, capsys):
    code, _, err = run_cli(
        capsys,
        "run",
        calibrated,
        "-i",
        "synthetic://medical?frames=2&size=320x240",
        "--backend",
        f"triton://127.0.0.1:{triton['demo_medical']}/nope",
    )
    assert_one_line_error(code, err, "has no model 'nope'")


def test_server_model_whose_inputs_do_not_match(calibrated, triton, capsys):
    code, _, err = run_cli(
        capsys,
        "run",
        calibrated,
        "-i",
        "synthetic://medical?frames=2&size=320x240",
        "--backend",
        f"triton://127.0.0.1:{triton['wrong_shape']}/wrong_shape",
    )
    assert_one_line_error(
        code, err, "takes 'frame' UINT8 [-1, 120, 160, 3]", "this bundle sends 'frame' UINT8 [batch, 240, 320, 3]"
    )


def test_server_that_goes_away_mid_stream_is_retried(calibrated, triton, tmp_path):
    """The server dies while frames flow, comes back, and the run carries on."""
    ports = free_ports(3)
    server = start_server(calibrated / "model.onnx", "demo_medical", ports)
    wait_ready("demo_medical", ports[0], server)
    frames = tmp_path / "frames"
    log = tempfile.TemporaryFile("w+")
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeseg",
            "run",
            str(calibrated),
            "-i",
            "synthetic://medical?frames=1000000&size=320x240&fps=30&realtime=1",
            "--backend",
            f"triton://127.0.0.1:{ports[0]}/demo_medical",
            "--reconnect-retries",
            "30",
            "--reconnect-max-wait",
            "1",
            "-o",
            str(frames),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    count = lambda: len(list(frames.glob("*.jpg"))) if frames.exists() else 0  # noqa: E731 - a one-line helper used just below
    try:
        deadline = time.monotonic() + 60
        while count() < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count() >= 10
        stop_server(server)
        time.sleep(2)
        before = count()
        server = start_server(calibrated / "model.onnx", "demo_medical", ports)
        wait_ready("demo_medical", ports[0], server)
        deadline = time.monotonic() + 60
        while count() < before + 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count() >= before + 10, "the run did not carry on after the server came back"
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=60)
        log.seek(0)
        stderr = log.read()
        stop_server(server)
    assert "did not answer" in stderr and "answers again" in stderr and "Traceback" not in stderr


def test_bench_through_triton(calibrated, triton, tmp_path, capsys):
    report = tmp_path / "bench.json"
    code, stdout, err = run_cli(
        capsys,
        "bench",
        calibrated,
        "-i",
        "synthetic://medical?seed=9&frames=100&size=320x240",
        "--backend",
        f"triton://127.0.0.1:{triton['demo_medical']}/demo_medical",
        "--frames",
        "8",
        "--warmup",
        "2",
        "--accuracy-frames",
        "4",
        "--no-baseline",
        "--json",
        report,
    )
    assert code == 0, err
    import json

    (row,) = json.loads(report.read_text())["rows"]
    assert row["backend"].startswith("triton://") and row["engine"]["count"] == 8 and row["end_to_end"]["frames"] == 8


def test_plain_io_graph_from_a_graph_with_unnamed_nodes(calibrated):
    """Imported graphs often leave node names empty: the head and tail must still come off exactly."""
    import onnx

    from edgeseg.deploy import plain_io_model

    named = onnx.load(str(calibrated / "model.onnx"))
    unnamed = onnx.load(str(calibrated / "model.onnx"))
    for node in unnamed.graph.node:
        node.name = ""
    expected, result = plain_io_model(named), plain_io_model(unnamed)
    assert [n.op_type for n in result.graph.node] == [n.op_type for n in expected.graph.node]
    assert next(n.op_type for n in result.graph.node if n.op_type != "Constant") == "Conv"  # the uint8 head is gone
    assert all(n.op_type != "ArgMax" for n in result.graph.node)
    assert result.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_deeplab_at_several_streams_keeps_the_shape_computations_that_read_its_input(tmp_path, capsys):
    """DeepLabV3+ exported again with a dynamic batch computes its last Resize's sizes from the normalised input's
    shape: those nodes stay in nvinfer's graph, which answers a batch (they once went with the uint8 head and
    deploy stopped with a traceback)."""
    bundle = tmp_path / "driving"
    assert run_cli(capsys, "export", "demo-driving", "-o", bundle)[0] == 0
    out = tmp_path / "ds"
    code, _, err = run_cli(capsys, "deploy", bundle, "--target", "deepstream", "-o", out, "--streams", "2",
                           "--precision", "fp32")  # fmt: skip
    assert code == 0, err
    session = ort.InferenceSession(str(out / "edgeseg_demo_driving.onnx"), providers=["CPUExecutionProvider"])
    assert [d if isinstance(d, int) else "dynamic" for d in session.get_outputs()[0].shape] == ["dynamic", 9, 240, 320]
    frames = [f.image for f in open_source("synthetic://driving?seed=9&frames=2&size=320x240")]
    meta = Bundle.load(bundle).input
    (probabilities,) = session.run(None, {session.get_inputs()[0].name: rgb_planes(frames, Bundle.load(bundle))})
    reference = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = np.concatenate([reference.run(None, {"frame": frames_to_input([f], meta)})[0] for f in frames])
    assert probabilities.shape == (2, 9, 240, 320) and (probabilities.argmax(1) == expected).mean() >= 0.9999


def test_a_graph_that_reads_the_uint8_frame_past_its_head_is_one_line():
    """A node beyond the head that reads the raw frame (here its Shape) would lose its input with the head."""
    import onnx
    from onnx import TensorProto, helper

    from edgeseg.deploy import plain_io_model
    from edgeseg.errors import EdgesegError

    nodes = [
        helper.make_node("Cast", ["frame"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["t", "scale"], ["n"]),
        helper.make_node("Conv", ["n", "w"], ["y"], kernel_shape=[1, 1]),
        helper.make_node("Shape", ["frame"], ["shape"], name="frame_shape"),
        helper.make_node("Slice", ["shape", "one", "three"], ["hw"]),
        helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
        helper.make_node("Resize", ["y", "", "", "sizes"], ["r"], mode="linear"),
        helper.make_node("ArgMax", ["r"], ["classes"], axis=1, keepdims=0),
    ]
    initializers = [
        helper.make_tensor("scale", TensorProto.FLOAT, [], [1 / 255]),
        helper.make_tensor("w", TensorProto.FLOAT, [2, 3, 1, 1], [0.1] * 6),
        helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        helper.make_tensor("three", TensorProto.INT64, [1], [3]),
        helper.make_tensor("nc", TensorProto.INT64, [2], [1, 2]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("frame", TensorProto.UINT8, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("classes", TensorProto.INT64, [1, 8, 8])], initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    with pytest.raises(EdgesegError, match="frame_shape read the uint8 frame before it is normalised"):
        plain_io_model(model)


# -- issue 32: a cache that covers every activation, Triton's accelerator precision and plan batch, NVMM, DLA --------
def test_cache_covers_the_activations_of_nvinfers_graph(tmp_path, capsys):
    """The cache names >= 95% of the 4-D activations of nvinfer's graph before its Softmax (the Q/DQ graph's scales,
    the calibration ranges, and scales carried through range-keeping operators), each a tensor of that graph, the
    graph's Softmax output left out; the graph fed 0-255 RGB planes classifies as the bundle does."""
    from edgeseg.deploy.calibration_cache import activations_4d, parse_cache

    bundle = tmp_path / "b"
    assert run_cli(capsys, "export", "deeplabv3plus", "-o", bundle, *TINY)[0] == 0
    code, _, err = run_cli(capsys, "calibrate", bundle, "--data", "synthetic://driving?seed=3&frames=12&size=64x64",
                           "--count", "8", "--eval-count", "4", "--method", "entropy")  # fmt: skip
    assert code == 0, err
    out = tmp_path / "ds"
    code, _, err = run_cli(capsys, "deploy", bundle, "--target", "deepstream", "-o", out, "--precision", "int8")
    assert code == 0, err
    model = onnx_load(out / "edgeseg_deeplabv3plus.onnx")
    activations = activations_4d(model, before="probabilities")
    _, scales = parse_cache((out / "calibration_jp6.cache").read_text())
    tensors = {i.name for i in model.graph.input} | {o for n in model.graph.node for o in n.output}
    assert set(scales) <= tensors and "probabilities" not in scales
    covered = sum(1 for name in activations if name in scales)
    assert covered >= 0.95 * len(activations), sorted(set(activations) - set(scales))
    text = (out / "config_infer_primary_edgeseg.txt").read_text()
    assert f"# the cache has scales for {covered} of the graph's {len(activations)} 4-D activations" in text
    session = ort.InferenceSession(str(out / "edgeseg_deeplabv3plus.onnx"), providers=["CPUExecutionProvider"])
    meta = Bundle.load(bundle)
    frame = next(iter(open_source("synthetic://driving?seed=9&frames=1&size=64x64"))).image
    answer = session.run(None, {session.get_inputs()[0].name: rgb_planes([frame], meta)})[0].argmax(1)
    reference = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = reference.run(None, {meta.input.name: frames_to_input([frame], meta.input)})[0]
    assert (answer == expected.reshape(answer.shape)).mean() >= 0.999


def test_scales_carried_through_range_keeping_operators():
    """qdq-translator's infer_unchanged_scales: forward through Relu/MaxPool/linear Resize, Concat's the largest of its
    inputs' once all are known, backward from a known output to an unknown input; not through a cubic Resize, and an
    average's input is not given its output's scale."""
    from onnx import TensorProto, helper

    from edgeseg.deploy.calibration_cache import propagate_scales

    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2]),
        helper.make_node("Resize", ["m", "", "s"], ["up"], mode="linear"),
        helper.make_node("Resize", ["m", "", "s"], ["cubic"], mode="cubic"),
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Concat", ["up", "c"], ["cat"], axis=1),
        helper.make_node("GlobalAveragePool", ["cat"], ["g"]),
        helper.make_node("GlobalAveragePool", ["y"], ["h"]),
        helper.make_node("Relu", ["q"], ["qr"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])], [])
    scales = propagate_scales(helper.make_model(graph), {"x": 0.5, "c": 2.0, "h": 1.0, "qr": 3.0})
    assert scales["r"] == scales["m"] == scales["up"] == 0.5 and "cubic" not in scales
    assert scales["cat"] == 2.0 and scales["g"] == 2.0  # Concat: its inputs' largest; an average: its input's
    assert "y" not in scales and scales["q"] == 3.0  # backward through Relu, not through an average


def test_cache_names_only_tensors_of_the_graph():
    from onnx import TensorProto, helper

    from edgeseg.deploy.calibration_cache import cache_scales
    from edgeseg.errors import EdgesegError

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])], [])  # fmt: skip
    model = helper.make_model(graph)
    assert cache_scales(model, {"x": 0.5}, {"r": 9.0, "elsewhere": 1.0}, "r") == {"x": 0.5}
    with pytest.raises(EdgesegError, match="does not have"):
        cache_scales(model, {"elsewhere": 0.5}, {}, "r")


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_triton_tensorrt_accelerator_precision_mode(calibrated, tmp_path, capsys, precision):
    """onnxruntime_backend: precision_mode defaults to FP32, which leaves TensorRT's INT8 off and fails a Q/DQ graph;
    INT8 artifacts get INT8, FP16 ones FP16."""
    out = tmp_path / "repo"
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "triton", "-o", out, "--precision", precision,
                           "--ort-tensorrt")  # fmt: skip
    assert code == 0, err
    (accelerator,) = parse_config(out / "demo_medical" / "config.pbtxt").optimization.execution_accelerators.\
        gpu_execution_accelerator  # fmt: skip
    assert accelerator.name == "tensorrt"
    assert dict(accelerator.parameters) == ({} if precision == "fp32" else {"precision_mode": precision.upper()})


def test_triton_plan_batch_within_its_engine_profile(capsys):
    """tensorrt_backend refuses a max_batch_size above the engine's profile: capped at it, with the rebuild command."""
    from types import SimpleNamespace

    from edgeseg.bundle import Artifact
    from edgeseg.deploy.triton import plan_max_batch
    from edgeseg.errors import EdgesegError

    bundle = SimpleNamespace(root=Path("b"))
    engine = Artifact(path="engines/m.engine", kind="engine", precision="int8", sha256="0",
                      extra={"build_options": {"batch": [1, 2, 4]}})  # fmt: skip
    assert plan_max_batch(bundle, engine, 2) == 2
    assert plan_max_batch(bundle, engine, 8) == 4
    assert "takes batches up to 4" in capsys.readouterr().err
    default = dataclasses.replace(engine, extra={"build_options": {"batch": None}})
    assert plan_max_batch(bundle, default, 8) == 1  # build's profile without --batch is 1,1,1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "edgeseg build b --precision int8 --batch 1,8,8" in err
    with pytest.raises(EdgesegError, match="rebuild it: edgeseg build b --precision int8 --batch 1,8,8"):
        plan_max_batch(bundle, dataclasses.replace(engine, extra={}), 8)


def test_hardware_encoder_gets_nvmm_caps_and_jetson_renders_with_nv3dsink(calibrated, tmp_path, capsys):
    """deepstream-app's create_encode_file_bin: NVMM I420 before the hardware encoder, system memory before x264."""
    out = tmp_path / "ds"
    code, _, err = run_cli(capsys, "deploy", calibrated, "--target", "deepstream", "-o", out, "--streams", "2",
                           "--precision", "int8", "--encoder", "hardware")  # fmt: skip
    assert code == 0, err
    script = (out / "deepstream_overlay.sh").read_text()
    assert "nvvideoconvert ! video/x-raw(memory:NVMM),format=I420 ! nvv4l2h264enc" in script
    assert 'SINK="nvvideoconvert ! nv3dsink sync=false"' in script and "nveglglessink" not in script


def test_dla_with_a_q_dq_graph_is_one_line():
    from edgeseg.engines.build import check_dla_precisions
    from edgeseg.errors import EdgesegError

    with pytest.raises(EdgesegError, match="DLA takes INT8 from calibration scales, not from a Q/DQ graph") as error:
        check_dla_precisions(("int8",), 0)
    assert "\n" not in str(error.value)
    check_dla_precisions(("fp16",), 0)
