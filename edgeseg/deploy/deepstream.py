"""DeepStream: an nvinfer config for semantic segmentation, a labels file and a runnable deepstream-app config.

What nvinfer gets is the FP32 graph, whatever the precision: nvinfer feeds float NCHW planes it
normalised itself (y = net-scale-factor * (x - offsets)), so the fused uint8 head comes off; the
argmax tail is replaced by a Softmax, so nvinfer's argmax (network-type=2) sees probabilities and
segmentation-threshold is one; the precision is nvinfer's network-mode. FP16 needs nothing else.
INT8 needs a calibration file: nvinfer enables TensorRT's INT8 only when int8-calib-file is set
(else it logs "INT8 calibration file not specified. Trying FP16 mode."), and TensorRT refuses a Q/DQ
graph without INT8 enabled, so the graph stays float and the scales of the bundle's Q/DQ graph go
into a TensorRT calibration cache, one per JetPack release (see calibration_cache). Several streams need a
batch dimension that is dynamic in the graph itself: a graph exported at batch 1 has its shape
computations folded at batch 1, so the model is exported again from PyTorch with a dynamic batch.
Every graph written is checked (onnx.checker's full check, ONNX Runtime at batch 1 and at the
stream count) and every config key is one DeepStream's parsers know (deepstream_keys.json).

--jetpack 4 (JetPack 4.6, DeepStream 6.0.1, TensorRT 8.2.1) changes what DeepStream 6.0.1 reads differently: no
[segvisual] group (deepstream-app parses it from 6.3 on), no enc-type in the file sink (its software encoder came
later: JetPack 4's boards all have NVENC), nvegltransform before nveglglessink (JetPack 4's EGL sink takes EGL
images), nvsegvisual without the blending properties its 6.0.1 manual does not list, and the graph must pass
TensorRT 8.2's parser (opset <= 13): it is checked against edgeseg check's 8.2 rules, as every JetPack's graph is
against its own TensorRT's.

A camera addressed with a password (rtsp://USER:PASSWORD@HOST/path) must reach deepstream-app, which reads it from
the [sourceN] uri= of its config and from nowhere else: that one file holds it, written with mode 0600. Every other
file shows the URI redacted; the overlay script reads the real one from that config when it runs.
"""

from __future__ import annotations

import configparser
import json
import math
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.deploy.calibration_cache import (
    JETPACK_RELEASE,
    TENSORRT_OF_JETPACK,
    activation_scales,
    activations_4d,
    cache_name,
    cache_scales,
    cache_text,
    calibration_ranges,
    graph_tensors,
    jetpack_key,
)
from edgeseg.deploy.options import DeployOptions, choose_artifact, deploy_name
from edgeseg.deploy.plain_onnx import cpu_session, plain_io_model
from edgeseg.engines.build import nvinfer_engine_path
from edgeseg.errors import EdgesegError, require
from edgeseg.fileio import PRIVATE, atomic_path, write_text_atomic
from edgeseg.redact import has_secret, redact

NETWORK_MODE = {"fp32": 0, "int8": 1, "fp16": 2}
SAMPLE_STREAM = "file:///opt/nvidia/deepstream/deepstream/samples/streams/sample_720p.mp4"
PROBABILITIES = "probabilities"
RGB_INPUT = "rgb"  # nvinfer's raw 0-255 RGB planes (net-scale-factor=1, offsets=0;0;0)
CENTRED = "rgb_centred"  # after the graph's Sub of 255*mean
LIVE_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "v4l2://", "csi://")
APP_CONFIG = "deepstream_app_config.txt"


@lru_cache(maxsize=None)
def known_keys() -> dict[str, Any]:
    return json.loads((Path(__file__).with_name("deepstream_keys.json")).read_text())


def write_deepstream(bundle: Bundle, output: Path, options: DeployOptions) -> list[Path]:
    onnx = require("onnx", "calibrate")
    if bundle.input.dynamic_size:
        raise EdgesegError("DeepStream's nvinfer needs fixed input dims; export the bundle without --dynamic-size")
    jetpack = jetpack_key(options.jetpack)
    artifact = choose_artifact(bundle, options.precision, prefer_engine=False)
    precision = artifact.precision
    name = deploy_name(bundle, options.model_name, prefix="edgeseg_")
    output.mkdir(parents=True, exist_ok=True)
    model = nvinfer_graph(bundle, plain_io_model(graph_for_streams(bundle, options.streams)))
    onnx_file = output / f"{name}.onnx"
    with atomic_path(onnx_file) as temp:
        onnx.save(model, str(temp))
    check_graph(onnx_file, bundle, options.streams)
    check_parity(onnx_file, bundle)
    check_tensorrt_rules(onnx_file, "fp32", jetpack)
    written = [onnx_file]
    calibration = None
    coverage = None
    engine = nvinfer_engine_path(onnx_file, options.streams, precision)  # nvinfer builds it from onnx_file
    if precision == "int8":
        int8_files, engine, coverage = write_int8(bundle, bundle.artifact_path(artifact), output, name, options, model)
        written += int8_files
        calibration = cache_name(jetpack)
    labels = output / "labels.txt"
    write_text_atomic(labels, "".join(f"{c.name}\n" for c in bundle.classes))
    infer_config = output / "config_infer_primary_edgeseg.txt"
    text = nvinfer_config(
        bundle, onnx_file.name, labels.name, precision, options, calibration, engine.name, jetpack,
        model.graph.input[0].name, coverage,
    )  # fmt: skip
    check_keys(text, infer=True)
    write_text_atomic(infer_config, text)
    app_config = output / APP_CONFIG
    text = app_config_text(bundle, infer_config.name, options, jetpack)
    check_keys(text, infer=False)
    # The one file that holds a camera's password, because deepstream-app connects with what it reads there.
    write_text_atomic(app_config, text, PRIVATE if any(has_secret(uri) for uri in options.inputs) else 0o644)
    overlay = output / "deepstream_overlay.sh"
    write_text_atomic(overlay, overlay_script(bundle, infer_config.name, options, jetpack))
    overlay.chmod(0o755)
    return [*written, labels, infer_config, app_config, overlay]


def write_int8(
    bundle: Bundle, qdq_path: Path, output: Path, name: str, options: DeployOptions, model: Any
) -> tuple[list[Path], Path, tuple[int, int]]:
    """INT8 both ways: a TensorRT calibration cache per JetPack for nvinfer's own build from the FP32 graph `model`,
    and where the streams allow it the Q/DQ graph for an engine built by `edgeseg build`. Returns the files written,
    the engine model-engine-file names, and how many of the graph's 4-D activations the cache names (of how many)."""
    import onnx

    written = []
    known = {**input_scales(bundle), **activation_scales(onnx.load(str(qdq_path)))}
    method = (bundle.manifest.get("calibration") or {}).get("method")
    scales = cache_scales(model, known, calibration_ranges(bundle.root, method), PROBABILITIES)
    check_cache_names(scales, model)
    activations = activations_4d(model, before=PROBABILITIES)
    coverage = (sum(1 for a in activations if a in scales), len(activations))
    for jetpack, version in TENSORRT_OF_JETPACK.items():
        path = output / cache_name(jetpack)
        write_text_atomic(path, cache_text(scales, version))
        written.append(path)
    engine = nvinfer_engine_path(output / f"{name}.onnx", options.streams, "int8")
    explicit = explicit_int8_graph(bundle, qdq_path, options.streams)
    if explicit is not None:
        explicit = with_normalisation(explicit, bundle.input.mean, bundle.input.std)
        explicit_file = output / f"{name}_int8_qdq.onnx"
        with atomic_path(explicit_file) as temp:
            onnx.save(explicit, str(temp))
        check_graph(explicit_file, bundle, options.streams)
        check_tensorrt_rules(explicit_file, "int8", jetpack_key(options.jetpack))
        written.append(explicit_file)
        engine = nvinfer_engine_path(explicit_file, options.streams, "int8")
    return written, engine, coverage


def input_scales(bundle: Bundle) -> dict[str, float]:
    """The scales of the graph's own first tensors, known exactly: 0-255 planes, then those planes less 255*mean."""
    centred = max(max(255.0 * m, 255.0 * (1.0 - m)) for m in bundle.input.mean)
    return {RGB_INPUT: 255.0 / 127.0, CENTRED: centred / 127.0}


def check_cache_names(scales: dict[str, float], model: Any) -> None:
    """Every name in the cache is a tensor of the graph nvinfer builds: TensorRT ignores the others."""
    unknown = sorted(set(scales) - graph_tensors(model))
    if unknown:
        raise EdgesegError(
            f"internal: the calibration cache names {unknown[0]}, which the DeepStream graph does not have"
        )


def nvinfer_graph(bundle: Bundle, plain: Any) -> Any:
    """What nvinfer builds: the plain-IO graph taking raw 0-255 RGB planes, normalising them exactly, ending in a
    Softmax."""
    return with_softmax(with_normalisation(plain, bundle.input.mean, bundle.input.std))


def with_normalisation(model: Any, mean: Any, std: Any) -> Any:
    """The graph fed raw 0-255 RGB planes: (x - 255*mean) * 1/(255*std) per channel, one Sub and one Mul before its
    first layer. nvinfer's one net-scale-factor cannot hold three stds; here it is 1 and the offsets 0."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    normalised = graph.input[0]
    dims = [d.dim_param or d.dim_value for d in normalised.type.tensor_type.shape.dim]
    shift = numpy_helper.from_array(np.asarray(mean, np.float32).reshape(1, 3, 1, 1) * np.float32(255.0),
                                    "edgeseg_mean_255")  # fmt: skip
    scale = numpy_helper.from_array(1.0 / (np.asarray(std, np.float32).reshape(1, 3, 1, 1) * np.float32(255.0)),
                                    "edgeseg_inverse_std_255")  # fmt: skip
    nodes = [
        helper.make_node("Sub", [RGB_INPUT, shift.name], [CENTRED], name="edgeseg_subtract_mean"),
        helper.make_node("Mul", [CENTRED, scale.name], [normalised.name], name="edgeseg_divide_std"),
    ]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    graph.initializer.extend([shift, scale])
    new_input = helper.make_tensor_value_info(RGB_INPUT, onnx.TensorProto.FLOAT, dims)
    del graph.input[:]
    graph.input.append(new_input)
    return model


def check_parity(path: Path, bundle: Bundle) -> None:
    """The graph nvinfer gets, fed 0-255 RGB planes as nvinfer passes them with net-scale-factor=1 and offsets 0,
    classifies a frame as the bundle's own FP32 graph does (ONNX Runtime, both)."""
    from edgeseg.runtime.tensors import frames_to_input, output_to_class_maps

    height, width = bundle.input.size
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 256, (1, max(height // 8, 1), max(width // 8, 1), 3), np.uint8)
    frame = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :height, :width]  # BGR, as OpenCV reads
    fp32 = bundle.artifact_path(bundle.select("onnx", "fp32", targets=("any",)))
    reference = cpu_session(str(fp32))
    expected = output_to_class_maps(reference.run(None, {bundle.input.name: frames_to_input(list(frame),
                                                                                          bundle.input)})[0],
                                    bundle.output)  # fmt: skip
    planes = np.ascontiguousarray(frame[..., ::-1].transpose(0, 3, 1, 2)).astype(np.float32)  # RGB, 0-255
    session = cpu_session(str(path))
    answer = session.run(None, {session.get_inputs()[0].name: planes})[0].argmax(1)
    agreement = float((answer == expected).mean())
    if agreement < 0.999:
        raise EdgesegError(
            f"internal: the DeepStream graph fed 0-255 RGB planes agrees with the bundle's graph on "
            f"{100 * agreement:.2f}% of pixels; expected the same classes"
        )


def dynamic_batch(bundle: Bundle, streams: int) -> bool:
    """Whether the graphs deploy writes have a dynamic batch: several streams need one (graph_for_streams)."""
    return streams > 1 or bundle.input.batch is None


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
        session = cpu_session(model.SerializeToString())
        answers.append(session.run(None, {bundle.input.name: frame})[0])
    if answers[0].shape != answers[1].shape or not np.allclose(answers[0], answers[1], atol=1e-4):
        raise EdgesegError(
            f"{name} exported again with a dynamic batch does not compute what the bundle's graph does"
            f"{why_another_model(bundle)}; re-export the bundle with --dynamic-batch"
        )
    return dynamic


def why_another_model(bundle: Bundle) -> str:
    """Why a re-export computes something else, where it is known (as bench's baseline row knows it): a function that
    initialises randomly builds other weights at each call. Asked only once the answers differ: it builds twice."""
    from edgeseg.export.rebuild import rebuild_model

    try:
        rebuild_model(bundle)
    except EdgesegError as reason:
        return f": {reason}"
    return ""


def explicit_int8_graph(bundle: Bundle, qdq_path: Path, streams: int) -> Any | None:
    """The bundle's Q/DQ graph with nvinfer's ends (float input, Softmax output), for an engine built on the device
    by `edgeseg build`: explicit quantization, edgeseg's own scales, on any TensorRT from 8.5 to 11. None where
    the streams need a batch the bundle's graph does not have: a fixed-batch Q/DQ graph cannot be given a
    dynamic batch without calibrating a dynamic-batch export."""
    import onnx

    if streams > 1 and bundle.input.batch is not None:
        print(
            f"edgeseg: note: no INT8 engine graph for --streams {streams}: the bundle's batch is fixed at "
            f"{bundle.input.batch}; export with --dynamic-batch and calibrate for one (the calibration caches serve "
            "TensorRT 8.5-10.x meanwhile)",
            file=sys.stderr,
        )
        return None
    return with_softmax(plain_io_model(onnx.load(str(qdq_path))))


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

    onnx.checker.check_model(str(path), full_check=True)
    session = cpu_session(str(path))
    graph_input = session.get_inputs()[0]
    height, width = bundle.input.size
    frames = np.random.default_rng(1).normal(0, 1, (max(streams, 1), 3, height, width)).astype(np.float32)
    single = session.run(None, {graph_input.name: frames[:1]})[0]
    batched = session.run(None, {graph_input.name: frames})[0]
    if batched.shape[0] != len(frames) or not np.allclose(batched[:1], single, atol=1e-4):
        raise EdgesegError(f"the DeepStream graph does not answer a batch of {streams} as it answers one frame")


def check_tensorrt_rules(path: Path, precision: str, jetpack: str) -> None:
    """The graph nvinfer parses passes edgeseg check's rules for the TensorRT of --jetpack, or deploy stops in one
    line with the first problem (an opset past 13 for JetPack 4.6 says to export with --opset 13)."""
    from edgeseg.engines.check import check_file, resolve_targets

    release = {"6": "6.1"}.get(jetpack, jetpack)  # the cache key "6" is JetPack 6.1/6.2
    for verdict in check_file(path, resolve_targets(None, [release]), precision):
        if not verdict.builds:
            raise EdgesegError(
                f"--jetpack {JETPACK_RELEASE[jetpack]}: {path.name} will not build on {verdict.label}: "
                f"{verdict.problems[0].line()}"
            )


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
    bundle: Bundle,
    onnx_name: str,
    labels_name: str,
    precision: str,
    options: DeployOptions,
    calibration: str | None,
    engine_name: str,
    jetpack: str = "6",
    input_name: str = "input",
    coverage: tuple[int, int] | None = None,
) -> str:
    height, width = bundle.input.size
    mean, std = bundle.input.mean, bundle.input.std
    lines = [
        "# nvinfer config for semantic segmentation, generated by edgeseg deploy",
        "[property]",
        "gpu-id=0",
        "# nvinfer passes the raw 0-255 RGB planes; the graph's first Sub and Mul normalise them exactly per channel:",
        f"#   (x - 255*mean) / (255*std), mean {', '.join(f'{m:g}' for m in mean)}, std "
        f"{', '.join(f'{v:g}' for v in std)} (one net-scale-factor cannot hold three stds)",
        "net-scale-factor=1",
        "offsets=0;0;0",
        "model-color-format=0",
        "# the FP32 graph whatever the precision: network-mode sets it (0=FP32 1=INT8 2=FP16)",
        f"onnx-file={onnx_name}",
    ]
    if engine_name.startswith(onnx_name):
        lines.append("# nvinfer builds the engine from onnx-file on its first start and reuses it from here")
    else:
        explicit = engine_name.split(".onnx")[0] + ".onnx"
        batch = f" --batch 1,{options.streams},{options.streams}" if dynamic_batch(bundle, options.streams) else ""
        if jetpack == "4":  # Python 3.6 on JetPack 4.6: edgeseg does not run there, TensorRT's trtexec does
            shapes = f" --shapes={input_name}:{options.streams}x3x{height}x{width}" if batch else ""
            build = f"/usr/src/tensorrt/bin/trtexec --onnx={explicit} --int8 --fp16{shapes} --saveEngine={engine_name}"
        else:
            build = f"edgeseg build {explicit}{batch}"
        lines += [
            "# INT8 with edgeseg's own scales (explicit Q/DQ, any TensorRT 8.2-11): on the device, run",
            f"#   {build}",
            "# which writes this engine; where it is absent, nvinfer builds from onnx-file with int8-calib-file",
        ]
    lines += [
        f"model-engine-file={engine_name}",
        f"labelfile-path={labels_name}",
        f"infer-dims=3;{height};{width}",
        f"batch-size={options.streams}",
        f"network-mode={NETWORK_MODE[precision]}",
    ]
    if calibration:
        caches = [f"{cache_name(key)} (JetPack {JETPACK_RELEASE[key]}, TensorRT {'.'.join(map(str, version))})"
                  for key, version in TENSORRT_OF_JETPACK.items()]  # fmt: skip
        lines += [
            "# INT8 from onnx-file: TensorRT's calibration cache with the bundle's INT8 scales; its header names the",
            "# TensorRT version, which must be the device's (deploy --jetpack picks it):",
            *[f"#   {cache}" for cache in caches],
            "# TensorRT 11 has no calibrator: there, only the engine above gives INT8",
        ]
        if coverage:
            lines.append(f"# the cache has scales for {coverage[0]} of the graph's {coverage[1]} 4-D activations "
                         "before its Softmax")  # fmt: skip
        lines.append(f"int8-calib-file={calibration}")
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


def stream_sources(options: DeployOptions) -> tuple[list[str], bool]:
    """The URI of each stream (NVIDIA's sample video where none was given), and whether any is live."""
    uris = options.inputs or [SAMPLE_STREAM] * options.streams
    return uris, any(uri.lower().startswith(LIVE_SCHEMES) for uri in uris)


def overlay_sources(uris: list[str]) -> tuple[list[str], list[str]]:
    """The script's lines that read each password-holding URI from the app config when it runs (that config is
    the one file allowed to hold it), and the uridecodebin element of each stream."""
    reads, sources = [], []
    for index, uri in enumerate(uris):
        if has_secret(uri):
            reads += [
                f"# {redact(uri)}: its credentials are in {APP_CONFIG} (mode 0600), read from there",
                f"URI{index}=$(sed -n '/^\\[source{index}\\]/,/^\\[/s/^uri=//p' {APP_CONFIG})",
            ]
            sources.append(f'uridecodebin uri="$URI{index}" ! mux.sink_{index}')
        else:
            sources.append(f"uridecodebin uri={uri} ! mux.sink_{index}")
    if reads:
        reads.append(
            "# gst-launch-1.0 takes the pipeline as words: while it runs, ps shows these URIs to every user of the "
            "machine\n# (deepstream-app, which reads them from its config, does not)"
        )
    return reads, sources


def tile_grid(streams: int) -> tuple[int, int]:
    """Rows and columns of the tiled display: the squarest grid that holds every stream."""
    columns = math.ceil(math.sqrt(streams))
    return math.ceil(streams / columns), columns


def overlay_script(bundle: Bundle, infer_config: str, options: DeployOptions, jetpack: str = "6") -> str:
    """A gst-launch-1.0 pipeline that blends the mask over the video, which deepstream-app cannot: its
    [segvisual] group has no key for nvsegvisual's original-background property, which this sets."""
    height, width = bundle.input.size
    streams = options.streams
    uris, live = stream_sources(options)
    rows, columns = tile_grid(streams)
    software = options.encoder == "software"
    encoder = "x264enc bitrate=4000 speed-preset=superfast" if software else "nvv4l2h264enc bitrate=4000000"
    elements = [
        f"nvstreammux name=mux batch-size={streams} width=1280 height=720 live-source={int(live)} "
        "batched-push-timeout=40000",
        f"nvinfer config-file-path={infer_config} batch-size={streams}",
        f"nvsegvisual batch-size={streams} width={width} height={height}"
        + ("" if jetpack == "4" else " original-background=true alpha=0.5"),
        f"nvmultistreamtiler rows={rows} columns={columns} width=1280 height=720",
    ]
    # Jetson renders with nv3dsink from JetPack 5 (NVIDIA's samples pick it on an integrated GPU); JetPack 4's
    # nveglglessink takes EGL images, which nvegltransform makes from NVMM buffers.
    display_sink = "nvvideoconvert ! " + ("nvegltransform ! nveglglessink" if jetpack == "4" else "nv3dsink")
    display_sink += " sync=false"
    # deepstream-app's file sink (create_encode_file_bin): system-memory I420 for the software encoder, NVMM I420
    # for the hardware one, which takes NVMM buffers only.
    caps = "video/x-raw,format=I420" if software else "video/x-raw(memory:NVMM),format=I420"
    file_sink = (f"nvvideoconvert ! {caps} ! {encoder} ! h264parse ! qtmux ! "
                 "filesink location=edgeseg_overlay.mp4")  # fmt: skip
    check_elements([*elements, *display_sink.split(" ! "), *file_sink.split(" ! ")])
    reads, sources = overlay_sources(uris)
    reading = "".join(f"{line}\n" for line in reads)
    pipeline = " ! \\\n  ".join(elements) + " ! \\\n  $SINK \\\n  " + " \\\n  ".join(sources)
    about = (
        "# The segmentation mask blended over the video, generated by edgeseg deploy. deepstream-app cannot draw\n"
        "# this: its [segvisual] group has no key for nvsegvisual's original-background property, set here.\n"
    )
    if jetpack == "4":
        about = (
            "# The segmentation mask of every stream, generated by edgeseg deploy for DeepStream 6.0.1 (JetPack 4.6),\n"
            "# whose nvsegvisual draws the mask alone (its manual lists no original-background property).\n"
        )
    return (
        "#!/bin/sh\n"
        f"{about}"
        "#   ./deepstream_overlay.sh            encodes to edgeseg_overlay.mp4 (Ctrl-C ends it cleanly)\n"
        "#   ./deepstream_overlay.sh display    shows it on screen\n"
        "set -e\n"
        'cd "$(dirname "$0")"\n'
        f"{reading}"
        'if [ "${1:-}" = display ]; then\n'
        f'  SINK="{display_sink}"\n'
        "else\n"
        f'  SINK="{file_sink}"\n'
        "fi\n"
        "# $SINK is left unquoted: gst-launch-1.0 takes the pipeline as words\n"
        f"exec gst-launch-1.0 -e \\\n  {pipeline}\n"
    )


def check_elements(elements: list[str]) -> None:
    """Every property set on one of NVIDIA's elements is one that element has (deepstream_keys.json): gst-launch-1.0
    stops at an unknown one."""
    known = known_keys()["gst_elements"]
    for element in elements:
        name, *settings = element.split()
        # name is GstObject's, so every element has it
        unknown = {setting.split("=")[0] for setting in settings} - {"name", *known.get(name, ())}
        if name in known and unknown:
            raise EdgesegError(f"internal: deploy set {sorted(unknown)} on {name}, which has no such property")


def app_config_text(bundle: Bundle, infer_config: str, options: DeployOptions, jetpack: str = "6") -> str:
    height, width = bundle.input.size
    streams = options.streams
    uris, live = stream_sources(options)
    rows, columns = tile_grid(streams)
    sections = [
        "# deepstream-app config generated by edgeseg deploy: N sources -> nvstreammux -> nvinfer -> nvsegvisual -> "
        "tiler -> sink.\n# deepstream-app shows nvsegvisual's class-colour mask on its own, not blended over the "
        "video ([segvisual]\n# is parsed from DeepStream 6.3 on): deepstream_overlay.sh runs the pipeline that blends.",
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
    ]
    if jetpack != "4":  # deepstream-app parses [segvisual] from DeepStream 6.3; JetPack 4.6's is 6.0.1
        sections.append(f"[segvisual]\nenable=1\ngpu-id=0\nbatch-size={streams}\nwidth={width}\nheight={height}")
    if jetpack == "4":  # DeepStream 6.0.1's file sink has no enc-type; JetPack 4's boards all have NVENC
        encoding = "# type 3 = encode to file with the hardware encoder (DeepStream 6.0.1 has no enc-type)\n"
    else:
        encoding = (
            "# type 3 = encode to file; enc-type 1 = software (x264), which works where the GPU has no NVENC\n"
            f"# (Jetson Orin Nano); 0 = the hardware encoder\nenc-type={encoder}\n"
        )
    sink1 = f"[sink1]\nenable=0\n{encoding}type=3\ncontainer=1\ncodec=1\nbitrate=4000000\n"
    sink1 += "output-file=edgeseg_deepstream.mp4\nsync=0"
    sections += [
        "[osd]\nenable=1\ngpu-id=0",
        "# sink type 2 = on-screen (EGL); on a headless board set enable=0 here and enable=1 on sink1",
        "[sink0]\nenable=1\ntype=2\nsync=0\ngpu-id=0",
        sink1,
    ]
    return "\n\n".join(sections) + "\n"
