"""DeepStream: an nvinfer config for semantic segmentation, a labels file and a runnable deepstream-app config.

What nvinfer gets is the FP32 graph, whatever the precision: nvinfer feeds float NCHW planes it
normalised itself (y = net-scale-factor * (x - offsets)), so the fused uint8 head comes off; the
argmax tail is replaced by a Softmax, so nvinfer's argmax (network-type=2) sees probabilities and
segmentation-threshold is one; the precision is nvinfer's network-mode. FP16 needs nothing else.
INT8 needs a calibration file: nvinfer enables TensorRT's INT8 only when int8-calib-file is set
(else it logs "INT8 calibration file not specified. Trying FP16 mode."), and TensorRT refuses a Q/DQ
graph without INT8 enabled, so the graph stays float and the scales of the bundle's Q/DQ graph go
into a TensorRT calibration cache, one per JetPack (see calibration_cache). Several streams need a
batch dimension that is dynamic in the graph itself: a graph exported at batch 1 has its shape
computations folded at batch 1, so the model is exported again from PyTorch with a dynamic batch.
Every graph written is checked (onnx.checker's full check, ONNX Runtime at batch 1 and at the
stream count) and every config key is one DeepStream's parsers know (deepstream_keys.json).
"""

from __future__ import annotations

import configparser
import json
import math
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.deploy.calibration_cache import TENSORRT_OF_JETPACK, activation_scales, cache_text
from edgeseg.deploy.options import DeployOptions, choose_artifact, deploy_name
from edgeseg.deploy.plain_onnx import plain_io_model
from edgeseg.errors import EdgesegError, require
from edgeseg.fileio import atomic_path, write_text_atomic

NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}
SAMPLE_STREAM = "file:///opt/nvidia/deepstream/deepstream/samples/streams/sample_720p.mp4"
PROBABILITIES = "probabilities"
LIVE_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "v4l2://", "csi://")


@cache
def known_keys() -> dict[str, Any]:
    return json.loads((Path(__file__).with_name("deepstream_keys.json")).read_text())


def write_deepstream(bundle: Bundle, output: Path, options: DeployOptions) -> list[Path]:
    onnx = require("onnx", "calibrate")
    if bundle.input.dynamic_size:
        raise EdgesegError("DeepStream's nvinfer needs fixed input dims; export the bundle without --dynamic-size")
    artifact = choose_artifact(bundle, options.precision, prefer_engine=False)
    precision = artifact.precision
    name = deploy_name(bundle, options.model_name, prefix="edgeseg_")
    output.mkdir(parents=True, exist_ok=True)
    model = with_softmax(plain_io_model(graph_for_streams(bundle, options.streams)))
    onnx_file = output / f"{name}.onnx"
    with atomic_path(onnx_file) as temp:
        onnx.save(model, str(temp))
    check_graph(onnx_file, bundle, options.streams)
    written = [onnx_file]
    calibration = None
    if precision == "int8":
        scales = activation_scales(onnx.load(str(bundle.artifact_path(artifact))))
        for jetpack, version in TENSORRT_OF_JETPACK.items():
            path = output / f"calibration_jp{jetpack}.cache"
            write_text_atomic(path, cache_text(scales, version))
            written.append(path)
        calibration = f"calibration_jp{options.jetpack}.cache"
    labels = output / "labels.txt"
    write_text_atomic(labels, "".join(f"{c.name}\n" for c in bundle.classes))
    infer_config = output / "config_infer_primary_edgeseg.txt"
    text = nvinfer_config(bundle, onnx_file.name, labels.name, precision, options, calibration)
    check_keys(text, infer=True)
    write_text_atomic(infer_config, text)
    app_config = output / "deepstream_app_config.txt"
    text = app_config_text(bundle, infer_config.name, options)
    check_keys(text, infer=False)
    write_text_atomic(app_config, text)
    return [*written, labels, infer_config, app_config]


def graph_for_streams(bundle: Bundle, streams: int) -> Any:
    """The bundle's FP32 graph, or for several streams the same model exported again with a dynamic batch."""
    import onnx

    fp32 = onnx.load(str(bundle.artifact_path(bundle.select("onnx", "fp32", targets=("any",)))))
    if streams == 1 or bundle.input.batch is None:
        return fp32
    from edgeseg.export.rebuild import why_not_rebuildable

    reason = why_not_rebuildable(bundle)
    if reason:
        raise EdgesegError(
            f"--streams {streams} needs a graph with a dynamic batch, and this bundle's is fixed at "
            f"{bundle.input.batch}; {reason}: re-export it with --dynamic-batch"
        )
    return dynamic_batch_export(bundle, fp32)


def dynamic_batch_export(bundle: Bundle, fp32: Any) -> Any:
    """The bundle's model exported from PyTorch with a dynamic batch (its shape computations traced, not folded at
    batch 1), checked to compute what the bundle's graph computes."""
    import onnx
    import onnxruntime as ort

    from edgeseg.export import export
    from edgeseg.export.rebuild import export_options_of

    name = bundle.manifest["model"]["name"]
    with tempfile.TemporaryDirectory(prefix="edgeseg-deploy-") as scratch:
        export(name, Path(scratch) / "b", export_options_of(bundle, dynamic_batch=True))
        dynamic = onnx.load(str(Path(scratch) / "b" / "model.onnx"))
    frame = np.random.default_rng(0).integers(0, 256, (1, *bundle.input.size, 3), np.uint8)
    if bundle.input.layout == "NCHW":
        frame = frame.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    answers = []
    for model in (fp32, dynamic):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        answers.append(session.run(None, {bundle.input.name: frame})[0])
    if answers[0].shape != answers[1].shape or not np.allclose(answers[0], answers[1], atol=1e-4):
        raise EdgesegError(
            f"{name} exported again with a dynamic batch does not compute what the bundle's graph does; re-export "
            "the bundle with --dynamic-batch"
        )
    return dynamic


def with_softmax(model: Any) -> Any:
    """The logits made per-class probabilities: nvinfer classifies a pixel when its best value exceeds
    segmentation-threshold, which then means a probability (on logits, a best logit <= 0 was "unclassified")."""
    from onnx import helper

    logits = model.graph.output[0].name
    model.graph.node.append(helper.make_node("Softmax", [logits], [PROBABILITIES], axis=1, name="edgeseg_softmax"))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    shape = [d.dim_param or d.dim_value or None for d in dims]
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(PROBABILITIES, 1, shape))
    return model


def check_graph(path: Path, bundle: Bundle, streams: int) -> None:
    """What nvinfer will parse: onnx.checker's full check, and ONNX Runtime at batch 1 and at the stream count,
    the batch answering frame for frame what batch 1 does."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph_input = session.get_inputs()[0]
    height, width = bundle.input.size
    frames = np.random.default_rng(1).normal(0, 1, (max(streams, 1), 3, height, width)).astype(np.float32)
    single = session.run(None, {graph_input.name: frames[:1]})[0]
    batched = session.run(None, {graph_input.name: frames})[0]
    if batched.shape[0] != len(frames) or not np.allclose(batched[:1], single, atol=1e-4):
        raise EdgesegError(f"the DeepStream graph does not answer a batch of {streams} as it answers one frame")


def check_keys(text: str, infer: bool) -> None:
    """Every group and key is one DeepStream's parsers know: an unknown one is ignored (or warned about) there."""
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(text)
    data = known_keys()
    groups = data["nvinfer"] if infer else {**data["deepstream_app"], **data["deepstream_app_from_6_3"]}
    for section in parsed.sections():
        group = section.rstrip("0123456789") if section[-1:].isdigit() else section
        if group not in groups:
            raise EdgesegError(f"internal: deploy wrote the group [{section}], which DeepStream does not parse")
        unknown = set(parsed[section]) - set(groups[group])
        if unknown:
            raise EdgesegError(f"internal: deploy wrote {sorted(unknown)} in [{section}], which DeepStream ignores")


def nvinfer_config(
    bundle: Bundle, onnx_name: str, labels_name: str, precision: str, options: DeployOptions, calibration: str | None
) -> str:
    height, width = bundle.input.size
    mean, std = bundle.input.mean, bundle.input.std
    # nvinfer has one scale for all channels: use the mean std, and say how far each channel is off.
    scale = 1.0 / (255.0 * sum(std) / 3)
    worst = max(abs(s / (sum(std) / 3) - 1) for s in std)
    if worst > 0.01:
        print(
            "edgeseg: note: nvinfer takes one net-scale-factor; per-channel std differs from it by up to "
            f"{100 * worst:.1f}%",
            file=sys.stderr,
        )
    mode_name = {0: "fp32", 1: "int8", 2: "fp16"}[NETWORK_MODE[precision]]
    lines = [
        "# nvinfer config for semantic segmentation, generated by edgeseg deploy",
        "[property]",
        "gpu-id=0",
        "# preprocessing contract: y = net-scale-factor * (x - offsets) on RGB planes = (x/255 - mean) / std, std "
        f"averaged (max deviation {100 * worst:.1f}%)",
        f"net-scale-factor={scale:.10f}",
        "offsets=" + ";".join(f"{255.0 * m:.4f}" for m in mean),
        "model-color-format=0",
        "# the FP32 graph whatever the precision: network-mode sets it (0=FP32 1=INT8 2=FP16)",
        f"onnx-file={onnx_name}",
        "# nvinfer builds the engine on its first start and keeps it here; an engine built beforehand on this",
        "# device from the same ONNX (trtexec --onnx=... --saveEngine=...) is used as it is",
        f"model-engine-file={onnx_name}_b{options.streams}_gpu0_{mode_name}.engine",
        f"labelfile-path={labels_name}",
        f"infer-dims=3;{height};{width}",
        f"batch-size={options.streams}",
        f"network-mode={NETWORK_MODE[precision]}",
    ]
    if calibration:
        lines += [
            "# INT8: TensorRT's calibration cache with the bundle's INT8 scales; its header names the TensorRT",
            "# version, which must be the device's: calibration_jp5.cache (JetPack 5.1, TensorRT 8.5.2),",
            "# calibration_jp6.cache (JetPack 6.1/6.2, TensorRT 10.3), calibration_jp7.cache (JetPack 7.0,",
            "# TensorRT 10.13). TensorRT 11 has no calibrator: there, build the engine from the bundle's",
            "# model.int8-tensorrt.onnx (edgeseg build) and set model-engine-file to it",
            f"int8-calib-file={calibration}",
        ]
    lines += [
        f"num-detected-classes={len(bundle.classes)}",
        "interval=0",
        "gie-unique-id=1",
        "network-type=2",
        f"output-blob-names={PROBABILITIES}",
        "# the graph ends in a Softmax: a pixel whose best class probability is at most this is left unclassified",
        "segmentation-threshold=0.0",
        "maintain-aspect-ratio=0",
        "",
    ]
    return "\n".join(lines)


def app_config_text(bundle: Bundle, infer_config: str, options: DeployOptions) -> str:
    height, width = bundle.input.size
    streams = options.streams
    uris = options.inputs or [SAMPLE_STREAM] * streams
    live = any(uri.startswith(LIVE_SCHEMES) for uri in uris)
    columns = math.ceil(math.sqrt(streams))
    rows = math.ceil(streams / columns)
    sections = [
        "# deepstream-app config generated by edgeseg deploy: N sources -> nvstreammux -> nvinfer -> nvsegvisual -> "
        "tiler -> sink.\n# deepstream-app shows nvsegvisual's class-colour mask on its own, not blended over the "
        "video ([segvisual]\n# is parsed from DeepStream 6.3 on): see edgeseg's README for the overlay.",
        "[application]\nenable-perf-measurement=1\nperf-measurement-interval-sec=5",
        f"[tiled-display]\nenable=1\nrows={rows}\ncolumns={columns}\nwidth=1280\nheight=720\ngpu-id=0",
    ]
    for index, uri in enumerate(uris):
        sections.append(
            f"[source{index}]\nenable=1\n# type 3 = URI (file://, rtsp://)\ntype=3\nuri={uri}\nnum-sources=1\ngpu-id=0"
        )
    encoder = 1 if options.encoder == "software" else 0
    sections += [
        f"[streammux]\ngpu-id=0\n# 1: the sources are cameras or streams, which nvstreammux must not wait for\n"
        f"live-source={int(live)}\nbatch-size={streams}\nbatched-push-timeout=40000\nwidth=1280\nheight=720\n"
        "enable-padding=0",
        f"[primary-gie]\nenable=1\ngpu-id=0\nbatch-size={streams}\ngie-unique-id=1\nconfig-file={infer_config}",
        f"[segvisual]\nenable=1\ngpu-id=0\nbatch-size={streams}\nwidth={width}\nheight={height}",
        "[osd]\nenable=1\ngpu-id=0",
        "# sink type 2 = on-screen (EGL); on a headless board set enable=0 here and enable=1 on sink1",
        "[sink0]\nenable=1\ntype=2\nsync=0\ngpu-id=0",
        "[sink1]\nenable=0\n# type 3 = encode to file; enc-type 1 = software (x264), which works where the GPU has "
        "no NVENC\n# (Jetson Orin Nano); 0 = the hardware encoder\n"
        f"type=3\ncontainer=1\ncodec=1\nenc-type={encoder}\nbitrate=4000000\noutput-file=edgeseg_deepstream.mp4\n"
        "sync=0",
    ]
    return "\n\n".join(sections) + "\n"
