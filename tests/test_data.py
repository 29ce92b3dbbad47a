"""Scenes, labelled folders, training, the shipped demo models and `edgeseg eval`."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, recipe_bundle, run_cli

from edgeseg.bundle import Bundle
from edgeseg.data.synthetic import DRIVING_CLASSES, KEYPOINTS, MEDICAL_CLASSES, SKELETON, make_scene
from edgeseg.metrics import confusion_matrix, scores
from edgeseg.models import ZOO, shipped_weights
from edgeseg.runtime.sources import open_source


@pytest.mark.parametrize("name,classes", [("driving", DRIVING_CLASSES), ("medical", MEDICAL_CLASSES)])
def test_scenes_label_every_class_and_move(name, classes):
    scene = make_scene(name, 320, 240, seed=11)
    seen = set()
    for index in range(0, 300, 10):
        seen |= set(np.unique(scene.render(index).label).tolist())
    assert seen == set(range(len(classes)))
    first, later = scene.render(0), scene.render(15)
    assert first.image.shape == (240, 320, 3) and first.label.dtype == np.uint8
    assert (first.label != later.label).mean() > 0.01  # camera motion and moving objects


def test_scene_labels_line_up_with_the_image():
    """Each class has its own look: the mean colour per class differs between classes."""
    frame = make_scene("medical", 320, 240, seed=2).render(0)
    means = [frame.image[frame.label == c].mean(0) for c in (0, 1, 2, 3)]
    assert means[0].max() < 10  # outside the scope is black
    assert np.abs(means[1] - means[2]).max() > 20  # lesion darker than tissue
    assert abs(means[3][0] - means[3][2]) < 30  # instrument is grey


def test_medical_keypoints_sit_on_the_instruments_and_say_when_they_are_unseen():
    """Each grasper's points come through the same lens as the picture: a joint said to be seen is on instrument
    pixels of the label; a point outside the field has visibility 0; graspers leave the field at times."""
    scene = make_scene("medical", 320, 240, seed=11)
    seen_joints, gone = 0, 0
    for index in range(0, 600, 7):
        frame = scene.render(index)
        assert frame.keypoints.shape == (len(scene.instruments), len(KEYPOINTS), 3)
        for x, y, visibility in frame.keypoints[:, KEYPOINTS.index("joint")]:
            if visibility == 2:
                seen_joints += 1
                assert frame.label[int(round(y)), int(round(x))] == 3, (index, x, y)
        gone += int((frame.keypoints[..., 2] == 0).all(axis=1).sum())
        inside = frame.keypoints[frame.keypoints[..., 2] > 0]
        assert (np.hypot((inside[:, 0] - 159.5) / 160, (inside[:, 1] - 119.5) / 120) < 0.99).all()
    assert seen_joints > 20 and gone > 0
    assert {name for bone in SKELETON for name in bone} == set(KEYPOINTS)


def test_the_entry_point_is_where_the_shaft_crosses_the_rim():
    """Seen entries lie on the shaft (instrument pixels) at the field's rim, RIM of the way out in both axes."""
    from edgeseg.data.synthetic import RIM

    scene = make_scene("medical", 320, 240, seed=11)
    seen = 0
    for index in range(0, 600, 7):
        frame = scene.render(index)
        for x, y, visibility in frame.keypoints[:, KEYPOINTS.index("entry")]:
            if visibility == 2:
                seen += 1
                assert np.hypot((x - 159.5) / 160, (y - 119.5) / 120) == pytest.approx(RIM, abs=0.005)
                assert frame.label[int(round(y)), int(round(x))] == 3, (index, x, y)
    assert seen > 20


def test_keypoints_written_by_dataset_read_back_from_the_folder(tmp_path, capsys):
    """`edgeseg dataset ...&keypoints=1` writes COCO keypoints JSON; the labelled folder gives each frame the same
    keypoints the scene rendered (to the JSON's 0.01 px), with the names and skeleton of the scene."""
    out = tmp_path / "set"
    uri = "synthetic://medical?seed=11&frames=40&size=160x120&keypoints=1"
    code, _, err = run_cli(capsys, "dataset", uri, "-o", out)
    assert code == 0, err
    document = json.loads((out / "keypoints.json").read_text())
    (category,) = document["categories"]
    assert category["name"] == "instrument" and category["keypoints"] == list(KEYPOINTS)
    assert [[category["keypoints"][a - 1], category["keypoints"][b - 1]] for a, b in category["skeleton"]] == [
        list(bone) for bone in SKELETON
    ]
    scene = make_scene("medical", 160, 120, seed=11)
    frames = list(open_source(str(out)))
    assert len(frames) == 40
    for frame in frames:
        expected = scene.render(frame.index).keypoints
        assert frame.keypoints.shape == expected.shape
        assert np.allclose(frame.keypoints, expected, atol=0.006)
    visibilities = np.concatenate([f.keypoints[..., 2].ravel() for f in frames])
    assert set(np.unique(visibilities)) >= {0.0, 2.0}
    # A folder written again from the folder keeps its keypoints, names and skeleton.
    assert run_cli(capsys, "dataset", out, "-o", tmp_path / "again")[0] == 0
    again = json.loads((tmp_path / "again" / "keypoints.json").read_text())
    assert again["categories"] == document["categories"] and again["images"] == document["images"]
    assert [a["keypoints"] for a in again["annotations"]] == [a["keypoints"] for a in document["annotations"]]


@pytest.mark.parametrize(
    "document,said",
    [
        ("not json", "is not COCO keypoints JSON"),
        ('{"images": [{"id": 1, "file_name": "000000.png"}], "categories": [{"id": 3, "name": "instrument", '
         '"keypoints": ["tip"]}], "annotations": [{"id": 7, "image_id": 1, "keypoints": [1, 2]}]}', "annotation 7"),
        ('{"images": [{"id": 1, "file_name": "gone.png"}], "categories": [{"id": 3, "name": "instrument", '
         '"keypoints": ["tip"]}], "annotations": []}', "lists gone.png"),
    ],
)
def test_broken_keypoints_json_is_one_line(tmp_path, capsys, document, said):
    out = tmp_path / "set"
    assert run_cli(capsys, "dataset", "synthetic://medical?seed=1&frames=1&size=64x64&keypoints=1", "-o", out)[0] == 0
    (out / "keypoints.json").write_text(document)
    code, _, err = run_cli(capsys, "dataset", str(out), "-o", tmp_path / "again")
    assert_one_line_error(code, err, said)


def test_keypoints_on_a_scene_without_them_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "dataset", "synthetic://driving?frames=1&keypoints=1", "-o", tmp_path / "d")
    assert_one_line_error(code, err, "keypoints=1 needs a scene with keypoint labels (medical)")


def test_metrics_from_confusion():
    truth = np.array([[0, 0, 1, 1]])
    predicted = np.array([[0, 1, 1, 1]])
    result = scores(confusion_matrix(predicted, truth, 3))
    assert result["per_class_iou"] == [0.5, 2 / 3, None]
    assert result["miou"] == pytest.approx((0.5 + 2 / 3) / 2) and result["pixel_accuracy"] == 0.75


def test_dataset_writes_a_labelled_folder_that_reads_back(tmp_path, capsys):
    out = tmp_path / "set"
    code, _, err = run_cli(capsys, "dataset", "synthetic://medical?seed=4&frames=5&size=96x64", "-o", out)
    assert code == 0, err
    images, labels = sorted((out / "images").iterdir()), sorted((out / "labels").iterdir())
    assert [p.stem for p in images] == [p.stem for p in labels] and len(images) == 5
    expected = make_scene("medical", 96, 64, seed=4).render(3)
    assert np.array_equal(cv2.imread(str(labels[3]), cv2.IMREAD_UNCHANGED), expected.label)
    assert np.array_equal(cv2.imread(str(images[3])), expected.image)


@pytest.fixture(scope="module")
def demo_bundle(tmp_path_factory):
    return recipe_bundle(tmp_path_factory, "demo-medical")


def run_cli_plain(*argv):
    from edgeseg.cli import main

    return main([str(a) for a in argv])


@pytest.mark.parametrize("name", ["demo-driving", "demo-medical"])
def test_shipped_demo_weights_are_small_and_carry_their_classes(name):
    path = shipped_weights(ZOO[name])
    assert path.stat().st_size <= 5 * 1024 * 1024
    checkpoint = torch.load(str(path), weights_only=True)
    expected = DRIVING_CLASSES if name == "demo-driving" else MEDICAL_CLASSES
    assert [c["name"] for c in checkpoint["classes"]] == [n for n, _ in expected]
    assert checkpoint["training"]["command"].startswith("edgeseg train")


def test_demo_model_segments_held_out_frames(demo_bundle, tmp_path, capsys):
    report = tmp_path / "eval.json"
    code, stdout, err = run_cli(
        capsys,
        "eval",
        demo_bundle,
        "--data",
        "synthetic://medical?seed=2000-2009&frames=20&size=320x240",
        "--json",
        report,
    )
    assert code == 0, err
    result = json.loads(report.read_text())
    # The --json schema is pinned: scripts read these keys.
    assert list(result) == [
        "miou",
        "pixel_accuracy",
        "per_class_iou",
        "classes",
        "frames",
        "data",
        "backend",
        "precision",
        "confusion_matrix",
    ]
    assert result["frames"] == 200 and len(result["per_class_iou"]) == 5
    # The medical scene is meant to be hard enough that precision changes show: FP32 between 0.80 and 0.92.
    assert 0.80 <= result["miou"] <= 0.92
    assert "confusion matrix" in stdout and "lesion" in stdout


def test_eval_on_a_labelled_folder_matches_eval_on_its_source(demo_bundle, tmp_path, capsys):
    uri = "synthetic://medical?seed=3100&frames=3&size=320x240"
    assert run_cli(capsys, "dataset", uri, "-o", tmp_path / "set")[0] == 0
    assert run_cli(capsys, "eval", demo_bundle, "--data", uri, "--json", tmp_path / "a.json")[0] == 0
    assert run_cli(capsys, "eval", demo_bundle, "--data", tmp_path / "set", "--json", tmp_path / "b.json")[0] == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["confusion_matrix"] == b["confusion_matrix"]  # PNG round trip is lossless


def test_training_improves_a_model_and_saves_a_checkpoint(tmp_path, capsys):
    weights = tmp_path / "tiny.pt"
    code, stdout, err = run_cli(
        capsys,
        "train",
        "lraspp",
        "--data",
        "synthetic://medical",
        "-o",
        weights,
        "--size",
        "64x96",
        "--epochs",
        "2",
        "--steps",
        "15",
        "--batch",
        "4",
        "--arg",
        "width=8",
        "--lr",
        "0.01",
    )
    assert code == 0, err
    checkpoint = torch.load(str(weights), weights_only=True)
    history = checkpoint["training"]["history"]
    assert len(history) == 2 and checkpoint["training"]["val_miou"] == max(h["val_miou"] for h in history)
    # A constant prediction (tissue everywhere) scores 0.12 on these validation frames; 30 steps on the
    # medical scene's smoke, glare and blood reach about 0.27.
    assert checkpoint["training"]["val_miou"] > 0.2
    assert [c["name"] for c in checkpoint["classes"]][:2] == ["background", "tissue"]
    bundle = tmp_path / "b"
    assert (
        run_cli(capsys, "export", "lraspp", "-o", bundle, "--size", "64x96", "--weights", weights, "--arg", "width=8")[
            0
        ]
        == 0
    )
    assert len(Bundle.load(bundle).classes) == 5


# -- bad input -------------------------------------------------------------------------------------
def make_folder(root, pairs, label_size=None, label_value=1):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for stem, has_label in pairs:
        cv2.imwrite(str(root / "images" / f"{stem}.png"), np.zeros((32, 48, 3), np.uint8))
        if has_label:
            cv2.imwrite(str(root / "labels" / f"{stem}.png"), np.full(label_size or (32, 48), label_value, np.uint8))


def test_eval_maps_labels_to_the_model_by_class_name(tmp_path, capsys):
    """A model whose classes are the driving scene's in another order is scored class for class: this one predicts
    'road' (its class 7; the scene's 1) everywhere, so road's IoU is the share of road pixels in the labels."""
    names = tmp_path / "names.txt"
    reversed_names = [name for name, _ in DRIVING_CLASSES][::-1]
    names.write_text("".join(f"{name}\n" for name in reversed_names))
    bundle = tmp_path / "b"
    code, _, err = run_cli(capsys, "export", "user_models:one_class_net", "-o", bundle, "--size", "48x64",
                           "--classes", names, "--arg", "num_classes=9", "--arg", "winner=7")  # fmt: skip
    assert code == 0, err
    uri = "synthetic://driving?frames=3&size=64x48"
    code, _, err = run_cli(capsys, "eval", bundle, "--data", uri, "--json", tmp_path / "e.json")
    assert code == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    road = np.mean([(frame.label == 1).mean() for frame in open_source(uri)])
    assert result["per_class_iou"][7] == pytest.approx(road, abs=1e-9)
    assert result["classes"][7] == "road" and result["pixel_accuracy"] == pytest.approx(road, abs=1e-9)


def test_eval_on_labels_of_another_class_set(tmp_path, capsys):
    bundle = tmp_path / "b"
    assert run_cli(capsys, "export", "lraspp", "-o", bundle, "--size", "64x64", "--classes", "21", "--arg",
                   "width=4")[0] == 0  # fmt: skip
    code, _, err = run_cli(capsys, "eval", bundle, "--data", "synthetic://driving?frames=2&size=64x64")
    assert_one_line_error(code, err, "cannot score this bundle", "9 classes and the model 21")


def test_unpaired_labelled_folder(demo_bundle, tmp_path, capsys):
    make_folder(tmp_path / "set", [("a", True), ("b", False)])
    code, _, err = run_cli(capsys, "eval", demo_bundle, "--data", tmp_path / "set")
    assert_one_line_error(code, err, "'b' has no partner in labels/")


def test_label_values_outside_the_class_range(demo_bundle, tmp_path, capsys):
    make_folder(tmp_path / "set", [("a", True)], label_value=9)
    code, _, err = run_cli(capsys, "eval", demo_bundle, "--data", tmp_path / "set")
    assert_one_line_error(code, err, "class 9", "5 classes")


def test_label_size_differs_from_its_image(demo_bundle, tmp_path, capsys):
    make_folder(tmp_path / "set", [("a", True)], label_size=(16, 16))
    code, _, err = run_cli(capsys, "eval", demo_bundle, "--data", tmp_path / "set")
    assert_one_line_error(code, err, "16x16", "48x32", "must match")


@pytest.mark.parametrize(
    "uri,fragment",
    [
        ("synthetic://jungle", "unknown synthetic scene 'jungle'"),
        ("synthetic://driving?zoom=2", "unknown option(s) zoom"),
    ],
)
def test_unknown_scene_or_option(demo_bundle, uri, fragment, capsys):
    code, _, err = run_cli(capsys, "eval", demo_bundle, "--data", uri)
    assert_one_line_error(code, err, fragment)


def test_unlabelled_source_for_eval(demo_bundle, sample_video, capsys):
    code, _, err = run_cli(capsys, "eval", demo_bundle, "--data", sample_video)
    assert_one_line_error(code, err, "has no labels")


def test_weights_for_another_class_count(tmp_path, capsys):
    code, _, err = run_cli(capsys, "export", "demo-medical", "-o", tmp_path / "x", "--classes", "3")
    assert_one_line_error(code, err, "do not fit the model", "size mismatch")


def test_train_takes_a_bare_scene_uri(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "unet", "--data", "synthetic://medical?seed=3", "-o", tmp_path / "w.pt")
    assert_one_line_error(code, err, "bare scene URI", "--train-seeds")


def test_train_on_a_folder_with_one_pair(tmp_path, capsys):
    make_folder(tmp_path / "set", [("a", True)])
    code, _, err = run_cli(
        capsys,
        "train",
        "unet",
        "--data",
        tmp_path / "set",
        "-o",
        tmp_path / "w.pt",
        "--classes",
        "3",
        "--size",
        "32x48",
    )
    assert_one_line_error(code, err, "has 1 pair(s)", "at least 2")
    assert not (tmp_path / "w.pt").exists()
