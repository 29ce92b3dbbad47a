"""Instance labels: the driving scene's objects each with an id, written and read as COCO JSON with RLE masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error, recipe_bundle, run_cli

from edgeseg.data.synthetic import INSTANCE_CLASSES, make_scene
from edgeseg.runtime.sources import open_source

pycocotools = pytest.importorskip("pycocotools", reason="pycocotools is the instances extra (make test installs it)")


def test_every_object_pixel_has_one_instance_of_one_class():
    scene = make_scene("driving", 320, 240, seed=11)
    for index in (0, 40, 120):
        frame = scene.render(index)
        objects = np.isin(frame.label, INSTANCE_CLASSES)
        assert np.array_equal(objects, frame.instances > 0)  # every vehicle, person and sign pixel, nothing else
        ids = np.unique(frame.instances[frame.instances > 0])
        assert list(ids) == list(range(1, len(ids) + 1)) and len(ids) >= 3
        for number in ids:
            assert len(np.unique(frame.label[frame.instances == number])) == 1


def test_a_hidden_part_belongs_to_the_object_in_front():
    """render() draws objects far to near into every plane; here a person steps in front of a car."""
    scene = make_scene("driving", 320, 240, seed=11)
    image = np.zeros((240, 320, 3), np.uint8)
    label, instances = np.zeros((240, 320), np.uint8), np.zeros((240, 320), np.uint16)
    scene._draw_object(image, ((label, 6), (instances, 1)), "vehicle", 160, 150, 0.6, (0, 0, 200))
    car = instances == 1
    scene._draw_object(image, ((label, 7), (instances, 2)), "pedestrian", 160, 160, 0.6, None)
    person = instances == 2
    hidden = car & person
    assert hidden.sum() > 100 and (instances == 1).sum() == car.sum() - hidden.sum()  # the overlap is the person's
    assert (label[person] == 7).all() and (label[instances == 1] == 6).all()


def test_dataset_writes_coco_json_that_pycocotools_reads(tmp_path, capsys):
    from pycocotools.coco import COCO

    uri = "synthetic://driving?seed=4&frames=3&size=160x120&instances=1"
    code, _, err = run_cli(capsys, "dataset", uri, "-o", tmp_path / "set")
    assert code == 0, err
    coco = COCO(str(tmp_path / "set" / "instances.json"))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["pedestrian", "traffic sign", "vehicle"]
    for frame, image_id in zip(open_source(uri), sorted(coco.getImgIds())):
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        assert len(annotations) == len(np.unique(frame.instances)) - 1
        for annotation, number in zip(annotations, sorted(n for n in np.unique(frame.instances) if n)):
            assert np.array_equal(coco.annToMask(annotation).astype(bool), frame.instances == number)
            x, y, w, h = annotation["bbox"]
            rows, cols = np.nonzero(frame.instances == number)
            assert (x, y, x + w, y + h) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


def test_a_labelled_folder_with_coco_json_is_read_back(tmp_path, capsys):
    uri = "synthetic://driving?seed=5&frames=2&size=160x120&instances=1"
    assert run_cli(capsys, "dataset", uri, "-o", tmp_path / "set")[0] == 0
    for original, read in zip(open_source(uri), open_source(str(tmp_path / "set"))):
        assert read.instances is not None and np.array_equal(read.label, original.label)
        assert np.array_equal(read.instances, original.instances)


@pytest.fixture()
def written(tmp_path, capsys):
    folder = tmp_path / "set"
    assert (
        run_cli(capsys, "dataset", "synthetic://driving?seed=6&frames=2&size=64x48&instances=1", "-o", folder)[0] == 0
    )
    return folder


def rewrite(folder, change):
    document = json.loads((folder / "instances.json").read_text())
    change(document)
    (folder / "instances.json").write_text(json.dumps(document))


def test_coco_json_that_does_not_match_its_images(written, capsys, tiny_bundle):
    rewrite(written, lambda d: d["images"][0].update(file_name="missing.png"))
    code, _, err = run_cli(capsys, "eval", tiny_bundle, "--data", written)
    assert_one_line_error(code, err, "lists missing.png, which is not in")


def test_coco_json_of_another_size(written, capsys, tiny_bundle):
    rewrite(written, lambda d: [image.update(height=96, width=128) for image in d["images"]])
    code, _, err = run_cli(capsys, "eval", tiny_bundle, "--data", written)
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    assert "is 64x48 but" in err or "of 64x48 but" in err or "instances.json says" in err


def test_coco_json_that_is_not_json(written, capsys, tiny_bundle):
    (written / "instances.json").write_text("{not json")
    code, _, err = run_cli(capsys, "eval", tiny_bundle, "--data", written)
    assert_one_line_error(code, err, "is not COCO instance JSON")


def test_instances_on_a_scene_without_objects(capsys, tmp_path):
    code, _, err = run_cli(capsys, "dataset", "synthetic://medical?frames=2&instances=1", "-o", tmp_path / "m")
    assert_one_line_error(code, err, "instances=1 needs a scene with countable objects")


# -- the Mask R-CNN: export, check, eval --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def instance_bundle(tmp_path_factory):
    """The zoo's Mask R-CNN with its initial (untrained) weights, exported at 240x320 with 20 detections."""
    import torch

    from edgeseg.cli import main

    # Untrained weights come from torch's global generator: reset it to its start, so the weights (and their
    # near-tie boxes) are the ones a fresh process gets, whatever ran before in this session.
    torch.manual_seed(torch.initial_seed())
    out = tmp_path_factory.mktemp("instances") / "maskrcnn"
    assert main(["export", "maskrcnn", "-o", str(out), "--size", "240x320", "--max-detections", "20"]) == 0
    return out


def test_the_detector_is_one_graph_with_fixed_size_outputs(instance_bundle):
    from collections import Counter

    import onnx

    model = onnx.load(str(instance_bundle / "model.onnx"))
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["RoiAlign"] >= 6 and ops["NonMaxSuppression"] == 2 and ops["TopK"] >= 4  # proposals, heads, masks
    shapes = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output}
    assert shapes == {"boxes": [20, 4], "scores": [20], "classes": [20], "masks": [20, 28, 28], "count": []}
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.UINT8]
    manifest = json.loads((instance_bundle / "manifest.json").read_text())
    assert manifest["output"]["kind"] == "instances" and manifest["instances"]["max_detections"] == 20
    assert manifest["parity"]["passed"] and manifest["parity"]["max_box_diff_px"] < 1.0


def test_tensorrt_check_passes_for_jetpack_5_6_7(instance_bundle, capsys):
    code, out, _ = run_cli(capsys, "check", instance_bundle)
    assert code == 0, out
    assert out.count(": builds") == 3  # JetPack 5 (8.5), 6 (10.3) and 7 (10.13)


def test_outputs_are_fixed_in_size_best_first_and_padded_with_zero(instance_bundle):
    import onnxruntime as ort

    from edgeseg.export.instances import driving_frames

    frames = driving_frames(240, 320, count=1)
    session = ort.InferenceSession(str(instance_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"frame": frames[0][None]})
    assert [o.shape for o in outputs] == [(20, 4), (20,), (20,), (20, 28, 28), ()]
    assert outputs[1].dtype == np.float32 and outputs[2].dtype == np.int32 and outputs[4].dtype == np.int32
    scores = outputs[1]
    assert np.all(np.diff(scores) <= 0) and int(outputs[4]) == int((scores > 0).sum())  # best first, zero pads
    assert ((outputs[3] >= 0) & (outputs[3] <= 1)).all()


def test_eval_reports_coco_ap_keys(instance_bundle, tmp_path, capsys):
    data = "synthetic://driving?seed=2000-2001&frames=2&size=320x240&instances=1"
    code, out, err = run_cli(capsys, "eval", instance_bundle, "--data", data, "--json", tmp_path / "e.json")
    assert code == 0, err
    figures = json.loads((tmp_path / "e.json").read_text())
    for key in ("box_ap", "box_ap50", "mask_ap", "mask_ap50", "box_ap_per_class", "mask_ap_per_class"):
        assert key in figures
    assert figures["frames"] == 4 and set(figures["mask_ap_per_class"]) == {"vehicle", "pedestrian", "traffic sign"}
    assert "mask" in out and "AP50" in out


def test_eval_of_an_instance_bundle_needs_instance_labels(instance_bundle, capsys):
    code, _, err = run_cli(capsys, "eval", instance_bundle, "--data", "synthetic://driving?frames=2&size=320x240")
    assert_one_line_error(code, err, "has no instance labels", "instances=1")


def test_deepstream_for_an_instance_bundle_says_why_not(instance_bundle, tmp_path, capsys):
    code, _, err = run_cli(capsys, "deploy", instance_bundle, "--target", "deepstream", "-o", tmp_path / "ds")
    assert_one_line_error(code, err, "nvinfer needs a custom output parser for instance masks")


def test_triton_repository_declares_the_five_outputs_as_onnx_runtime_reports_them(calibrated_demo, tmp_path, capsys):
    import onnxruntime as ort
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    out = tmp_path / "repo"
    code, _, err = run_cli(capsys, "deploy", calibrated_demo, "--target", "triton", "-o", out, "--precision", "int8")
    assert code == 0, err
    folder = out / "demo_driving_instances"
    config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 0
    model = folder / "1" / "model.onnx"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    # The served graph is the artifact's, but for its scalar count given as [1] (tritonserver loads no scalar output
    # of a model it does not batch): on a frame both answer the same.
    own_graph = calibrated_demo / "model.int8-tensorrt.onnx"
    artifact = ort.InferenceSession(str(own_graph), providers=["CPUExecutionProvider"])
    frame = np.random.default_rng(0).integers(0, 256, (1, 240, 320, 3), dtype=np.uint8)
    served, own = session.run(None, {"frame": frame}), artifact.run(None, {"frame": frame})
    assert [o.name for o in session.get_outputs()] == [o.name for o in artifact.get_outputs()]
    for name, a, b in zip([o.name for o in artifact.get_outputs()], served, own):
        assert np.array_equal(np.reshape(a, np.shape(b)), b), name
    assert np.shape(own[-1]) == () and np.shape(served[-1]) == (1,)
    (graph_in,) = config.input
    assert graph_in.name == "frame" and list(graph_in.dims) == session.get_inputs()[0].shape == [1, 240, 320, 3]
    triton_types = {"tensor(float)": 11, "tensor(int32)": 8}  # TYPE_FP32, TYPE_INT32
    declared = {o.name: o for o in config.output}
    assert list(declared) == ["boxes", "scores", "classes", "masks", "count"]
    for output in session.get_outputs():  # what Triton's ONNX Runtime backend compares, dim by dim
        spec = declared[output.name]
        assert spec.data_type == triton_types[output.type]
        model_shape = list(spec.reshape.shape) if spec.HasField("reshape") else list(spec.dims)
        assert model_shape == output.shape, output.name
    assert list(declared["count"].dims) == [1] and list(declared["masks"].dims) == [50, 28, 28]
    assert (folder / "labels.txt").read_text().split("\n")[:3] == ["vehicle", "pedestrian", "traffic sign"]


def test_max_detections_of_zero_is_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "maskrcnn", "-o", tmp_path / "b", "--max-detections", "0")
    assert code == 2 and "--max-detections" in err and "Traceback" not in err


def test_run_writes_every_frame_of_a_video_with_instances_drawn(instance_bundle, tmp_path, capsys):
    import cv2

    video = tmp_path / "out.mp4"
    source = "synthetic://driving?seed=2000&frames=12&size=320x240&instances=1"
    code, out, err = run_cli(capsys, "run", instance_bundle, "-i", source, "-o", video, "--score-threshold", "0")
    assert code == 0, err
    assert "frames: 12 read, 12 inferred, 12 written" in out
    capture = cv2.VideoCapture(str(video))
    written = 0
    while capture.read()[0]:
        written += 1
    assert written == 12


def test_draw_instances_colours_each_instance_inside_its_box():
    from edgeseg.runtime.heads.instances import Detections, draw_instances

    image = np.full((100, 200, 3), 90, np.uint8)
    masks = np.zeros((2, 28, 28), np.float32)
    masks[:, 7:21, 7:21] = 1.0  # the middle half of each box
    found = Detections(np.array([[20, 20, 60, 60], [120, 40, 180, 90]], np.float32), np.array([0.9, 0.3]),
                       np.array([0, 2]), masks)  # fmt: skip
    drawn, ids = draw_instances(image, found, ["vehicle", "pedestrian", "sign"], alpha=0.5, threshold=0.5)
    assert set(np.unique(ids)) == {0, 1}  # the 0.3 detection is below the threshold
    assert (ids[30:50, 30:50] == 1).all() and (ids[:20] == 0).all()
    assert (drawn[35, 35] != image[35, 35]).any() and (drawn[80, 100] == image[80, 100]).all()


def test_more_than_one_input_or_a_threshold_on_a_semantic_bundle(instance_bundle, tiny_bundle, capsys):
    frames = "synthetic://driving?frames=2&size=320x240"
    code, out, err = run_cli(capsys, "run", instance_bundle, "-i", frames, "-i", frames, "-o", "none")
    assert code == 0 and "frames: 4 read, 4 inferred, 4 written" in out, err  # the one loop takes several inputs
    code, _, err = run_cli(capsys, "run", tiny_bundle, "-i", frames, "--score-threshold", "0.4")
    assert_one_line_error(code, err, "--score-threshold is for instance bundles")
    code, _, err = run_cli(capsys, "run", instance_bundle, "-i", frames, "--score-threshold", "1.5")
    assert code == 2 and "--score-threshold" in err and "Traceback" not in err


def test_info_describes_an_instance_bundle(instance_bundle, capsys):
    code, out, _ = run_cli(capsys, "info", instance_bundle)
    assert code == 0
    assert "output   instances: boxes, scores, classes, masks, count; up to 20 detections, 28x28 masks" in out
    assert "parity   PyTorch vs ONNX Runtime on 4 frames:" in out and "mask IoU" in out


def test_draw_instances_with_no_mask_pixel_leaves_the_frame():
    from edgeseg.runtime.heads.instances import Detections, draw_instances

    image = np.full((60, 80, 3), 90, np.uint8)
    found = Detections(np.array([[10, 10, 30, 30]], np.float32), np.array([0.9]), np.array([0]),
                       np.full((1, 28, 28), 0.4, np.float32))  # fmt: skip
    drawn, ids = draw_instances(image, found, ["vehicle"], threshold=0.5)
    assert not ids.any() and (drawn[20, 20] == image[20, 20]).all()  # only the box outline and label are drawn


# -- the shipped demo: demo-driving-instances ----------------------------------------------------------------------
def test_shipped_instance_weights_are_small_and_carry_their_classes():
    import torch

    from edgeseg.models import ZOO, shipped_weights

    path = shipped_weights(ZOO["demo-driving-instances"])
    assert path.stat().st_size <= 5 * 1024 * 1024
    checkpoint = torch.load(str(path), weights_only=True)
    assert [(c["name"], c["category_id"]) for c in checkpoint["classes"]] == [
        ("vehicle", 6), ("pedestrian", 7), ("traffic sign", 8)
    ]  # fmt: skip
    assert checkpoint["kind"] == "instances" and checkpoint["training"]["command"].startswith("edgeseg train maskrcnn")


def test_the_demo_finds_objects_in_held_out_frames(tmp_path, capsys):
    bundle = tmp_path / "demo"
    assert run_cli(capsys, "export", "demo-driving-instances", "-o", bundle)[0] == 0
    data = "synthetic://driving?seed=2000-2001&frames=4&size=320x240&instances=1"
    code, _, err = run_cli(capsys, "eval", bundle, "--data", data, "--json", tmp_path / "e.json")
    assert code == 0, err
    figures = json.loads((tmp_path / "e.json").read_text())
    # 8 frames only, to stay quick; the targets (mask AP50 >= 0.70, box AP50 >= 0.80) are measured on 200 held-out
    # frames in the closing note.
    assert figures["box_ap50"] >= 0.6 and figures["mask_ap50"] >= 0.5, figures


@pytest.mark.parametrize(
    "argv,said",
    [
        (["export", "maskrcnn", "-o", "OUT", "--dynamic-batch"], "one frame at a fixed size"),
        (["export", "maskrcnn", "-o", "OUT", "--no-fuse-argmax"], "drop --no-fuse-preprocess/--no-fuse-argmax"),
        (["export", "maskrcnn", "-o", "OUT", "--size", "100x100"], "needs multiples of 16"),
        (["train", "maskrcnn", "--data", "synthetic://medical", "-o", "OUT"], "trains on instance labels"),
    ],
)
def test_instance_export_and_train_bad_input(argv, said, tmp_path, capsys):
    code, _, err = run_cli(capsys, *[str(tmp_path / "out") if a == "OUT" else a for a in argv])
    assert_one_line_error(code, err, said)


# -- calibrate, and what the runtime writes -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def calibrated_demo(tmp_path_factory):
    """The shipped demo, calibrated on a few frames (min-max ranges: the quickest; fidelity on 6 labelled frames)."""
    from edgeseg.cli import main

    bundle = recipe_bundle(tmp_path_factory, "demo-driving-instances")  # the shared export, calibrated here
    data = "synthetic://driving?seed=3&frames=14&size=320x240&instances=1"
    assert main(["calibrate", str(bundle), "--data", data, "--count", "8", "--eval-count", "6", "--method", "minmax",
                 "--cpu-format", "qdq"]) == 0  # fmt: skip
    return bundle


def test_calibrate_measures_each_variant_in_coco_ap(calibrated_demo):
    from edgeseg.bundle import Bundle

    bundle = Bundle.load(calibrated_demo)
    calibration = bundle.manifest["calibration"]
    assert calibration["truth"] == "instance labels" and calibration["fp32_mask_ap"] > 0.2
    variants = {(a.precision, a.target): a for a in bundle.artifacts if a.precision != "fp32"}
    assert set(variants) == {("fp16", "any"), ("int8", "tensorrt"), ("int8", "cpu")}
    for artifact in variants.values():
        fidelity = artifact.extra["fidelity"]
        assert fidelity["frames"] == 6 and 0 <= fidelity["agreement"] <= 1
        assert fidelity["fp32_mask_ap"] == calibration["fp32_mask_ap"]
        assert fidelity["mask_ap_change"] == pytest.approx(fidelity["mask_ap"] - fidelity["fp32_mask_ap"])
        assert set(fidelity["mask_ap_per_class"]) == {"vehicle", "pedestrian", "traffic sign"}
        assert all((calibrated_demo / path).is_file() for path in fidelity["worst_frames"])
        assert artifact.extra["accepted"] == (fidelity["mask_ap_change"] >= -0.01)  # the default bar: 1 point
        assert "1.0 point of mask AP" in artifact.extra["accuracy_bar"]
    # FP16 moves no detection that matters; INT8 stays within a few points even on min-max ranges of 8 frames.
    assert abs(variants["fp16", "any"].extra["fidelity"]["mask_ap_change"]) < 0.005
    assert abs(variants["int8", "tensorrt"].extra["fidelity"]["mask_ap_change"]) < 0.05


def test_int8_and_fp16_keep_the_box_arithmetic_nms_and_roialign_in_float(calibrated_demo):
    import onnx

    from edgeseg.onnx_graph import producers

    for name, float_type in (("model.int8-tensorrt.onnx", 1), ("model.fp16.onnx", 1)):
        model = onnx.shape_inference.infer_shapes(onnx.load(str(calibrated_demo / name)))
        graph = model.graph
        types = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.output)}
        writers = producers(graph)
        detector = [n for n in graph.node if n.op_type in ("NonMaxSuppression", "RoiAlign")]
        assert len(detector) == 8
        for node in detector:
            boxes = node.input[1]  # NMS: boxes; RoiAlign: rois
            assert writers[boxes].op_type != "DequantizeLinear", (name, node.name)
            assert types[boxes] == float_type, (name, node.name)
        ops = {n.op_type for n in graph.node}
        if "int8" in name:  # the box head's fully connected layers are quantized with the convolutions
            quantized = {writers[n.input[0]].op_type for n in graph.node if n.op_type == "Gemm"}
            assert quantized == {"DequantizeLinear"} and "QuantizeLinear" in ops
        else:
            assert "QuantizeLinear" not in ops
            conv_weights = {t.name: t.data_type for t in graph.initializer}
            assert {conv_weights[n.input[1]] for n in graph.node if n.op_type == "Conv"} == {10}  # float16


def test_run_precision_int8_uses_the_cpu_form_and_save_mask_writes_detections(calibrated_demo, tmp_path, capsys):
    import cv2

    out = tmp_path / "frames"
    source = "synthetic://driving?seed=2000&frames=3&size=320x240&instances=1"
    code, stdout, err = run_cli(capsys, "run", calibrated_demo, "-i", source, "-o", out, "--precision", "int8",
                                "--save-mask")  # fmt: skip
    assert code == 0, err
    assert "model.int8-cpu.onnx" in stdout
    for index in range(3):
        ids = cv2.imread(str(out / "masks" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        records = json.loads((out / "masks" / f"{index:06d}.json").read_text())["detections"]
        assert records and [r["id"] for r in records] == list(range(1, len(records) + 1))
        assert set(np.unique(ids)) - {0} <= {r["id"] for r in records}
        for record in records:
            x0, y0, x1, y1 = record["box"]
            ys, xs = np.nonzero(ids == record["id"])
            if len(xs):  # an instance's pixels lie inside its box
                assert xs.min() >= int(x0) - 1 and xs.max() <= x1 + 1 and ys.min() >= int(y0) - 1 and ys.max() <= y1 + 1
            assert record["class"] in ("vehicle", "pedestrian", "traffic sign") and 0.5 <= record["score"] <= 1


def test_min_agreement_on_an_instance_bundle_points_to_max_ap_drop(instance_bundle, capsys):
    code, _, err = run_cli(capsys, "calibrate", instance_bundle, "--data", "synthetic://driving?frames=4",
                           "--min-agreement", "0.99")  # fmt: skip
    assert_one_line_error(code, err, "its INT8 target is in mask AP", "use --max-ap-drop")


def test_max_ap_drop_is_for_instance_bundles_and_in_points(tiny_bundle, instance_bundle, capsys):
    code, _, err = run_cli(capsys, "calibrate", tiny_bundle, "--data", "synthetic://driving?frames=4", "--max-ap-drop",
                           "1")  # fmt: skip
    assert_one_line_error(code, err, "target is in pixel agreement", "use --min-agreement instead of --max-ap-drop")
    code, _, err = run_cli(capsys, "calibrate", instance_bundle, "--data", "synthetic://driving?frames=4",
                           "--max-ap-drop", "150")  # fmt: skip
    assert code == 2 and "outside 0..100 points" in err and "Traceback" not in err


def test_bench_has_a_row_per_precision_with_mask_ap_and_the_1080p_overlay_ratio(calibrated_demo, tmp_path, capsys):
    report_path = tmp_path / "bench.json"
    source = "synthetic://driving?seed=2000&frames=8&size=320x240&instances=1"
    short = ["--frames", "6", "--warmup", "2", "--accuracy-frames", "4"]
    code, out, err = run_cli(capsys, "bench", calibrated_demo, "-i", source, *short, "--json", report_path, "--md",
                             tmp_path / "bench.md")  # fmt: skip
    assert code == 0, err
    report = json.loads(report_path.read_text())
    assert report["kind"] == "instances"
    *measured, baseline = report["rows"]
    rows = {row["precision"]: row for row in measured}
    assert list(rows) == ["fp32", "fp16", "int8"] and rows["int8"]["artifact"] == "model.int8-cpu.onnx"
    assert [row["name"] for row in measured] == ["onnxruntime fp32", "onnxruntime fp16", "onnxruntime int8"]
    for row in rows.values():
        assert row["engine"]["p50_ms"] > 0 and row["end_to_end"]["frames"] == 6 and row["sequential_fps"] > 0
        assert set(row["stages_alone_ms"]) == {"capture", "preprocess", "infer", "postprocess", "overlay"}
        assert 0 < row["accuracy"]["mask_ap"] <= 1 and 0 < row["accuracy"]["agreement"] <= 1
    assert rows["fp32"]["accuracy"]["agreement"] == 1.0  # the reference row agrees with itself
    # the demo's PyTorch model, rebuilt from its weights, finds what the exported graph finds
    assert baseline["name"] == "pytorch eager fp32 (baseline)" and baseline["engine"]["p50_ms"] > 0
    assert baseline["accuracy"]["agreement"] > 0.99
    assert baseline["accuracy"]["mask_ap"] == pytest.approx(rows["fp32"]["accuracy"]["mask_ap"], abs=0.02)
    (at_1080p,) = [o for o in report["overlay"] if o["at"] == "1080p"]
    assert at_1080p["resolution"] == "1920x1080" and at_1080p["filter"] == "30 instances"
    assert report["ratios"]["overlay_1080p_vs_addweighted"] == at_1080p["ratio"]
    assert "mask AP" in out and "detection agreement" in (tmp_path / "bench.md").read_text()


def test_bench_or_run_of_an_instance_bundle_through_triton(calibrated_demo, tmp_path, capsys):
    # bench takes it to the server too (test_triton_kinds.py runs both against a real one)
    code, _, err = run_cli(capsys, "bench", calibrated_demo, "--backend", "triton://localhost:1/m")
    assert_one_line_error(code, err, "Triton at localhost:1 is unreachable")
    # run takes it to the server, which asks for every output the head reads (test_one_loop.py)
    code, _, err = run_cli(capsys, "run", calibrated_demo, "-i", "synthetic://driving?frames=2", "--backend",
                           "triton://localhost:1/m")  # fmt: skip
    assert_one_line_error(code, err, "Triton at localhost:1 is unreachable")


def test_the_detector_reads_all_five_outputs_by_name_from_a_tensorrt_engine(instance_bundle, tmp_path):
    """TensorRT cannot run here: the engine is the test double's (its execution computes nothing), so the outputs
    are written into its "device" buffers by hand. This checks edgeseg's side only: every output is copied back
    and read by its name, and boxes are scaled to the frame; it makes no claim about what TensorRT computes."""
    import shutil

    from tensorrt_double import HostMemoryCuda, RecordingTensorRT

    from edgeseg.bundle import Bundle
    from edgeseg.engines import BuildOptions, GpuInfo, build
    from edgeseg.runtime.backends.tensorrt import TensorRTBackend
    from edgeseg.runtime.detector import InstanceDetector
    from edgeseg.runtime.pipeline import StageTimes

    bundle_dir = tmp_path / "b"
    shutil.copytree(instance_bundle, bundle_dir)
    trt = RecordingTensorRT("10.3.0")
    bundle = build(bundle_dir, BuildOptions(progress=False, precisions=("fp32",)), trt=trt, gpu=GpuInfo("Orin", "8.7"))
    engine = next(a for a in bundle.artifacts if a.kind == "engine")
    backend = TensorRTBackend(Bundle.load(bundle_dir), engine, trt=trt, cuda=HostMemoryCuda())
    detector = InstanceDetector(bundle, backend)
    try:
        backend._prepare(1)
        answer = {
            "boxes": np.zeros((20, 4), np.float32), "scores": np.zeros(20, np.float32),
            "classes": np.zeros(20, np.int32), "masks": np.zeros((20, 28, 28), np.float32), "count": np.int32(2),
        }  # fmt: skip
        answer["boxes"][:2] = [[10, 20, 50, 60], [100, 40, 160, 120]]
        answer["scores"][:2], answer["classes"][:2], answer["masks"][:2] = [0.9, 0.7], [2, 0], 1.0
        for name, value in answer.items():
            memory = backend.buffers[name][1].memory
            memory[: value.nbytes] = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
        found = detector.detect(np.zeros((480, 640, 3), np.uint8), StageTimes())  # twice the model's 320x240
    finally:
        detector.close()
    assert np.allclose(found.boxes, [[20, 40, 100, 120], [200, 80, 320, 240]])
    assert list(found.scores) == pytest.approx([0.9, 0.7]) and list(found.classes) == [2, 0]
    assert found.masks.shape == (2, 28, 28) and not backend.is_open


def test_fidelity_without_instance_labels_scores_against_fp32_detections(calibrated_demo):
    from edgeseg.bundle import Bundle
    from edgeseg.calibration.dataset import HeldOut
    from edgeseg.calibration.instance_fidelity import InstanceFidelity

    bundle = Bundle.load(calibrated_demo)
    frames = [f.image for f in open_source("synthetic://driving?seed=2001&frames=3&size=320x240")]
    measure = InstanceFidelity(bundle, calibrated_demo / "model.onnx", HeldOut(frames, None, None), 1, 1.0)
    assert measure.truth.startswith("FP32 detections")
    # FP32 against its own detections above 0.5: at IoU 0.5 nearly all match (not all: a pixel two detections share
    # belongs to the higher-scored one in the truth, and the truth's boxes are its masks' extents, not the model's).
    figures = measure.reference_ap
    assert figures["mask_ap50"] > 0.9 and figures["box_ap50"] > 0.9
    assert measure.target == pytest.approx(figures["mask_ap"] - 0.01)  # 1.0 point below
    assert measure.value(calibrated_demo / "model.onnx") == pytest.approx(measure.reference_ap["mask_ap"])
    assert measure.loss(calibrated_demo / "model.onnx") == 0.0
