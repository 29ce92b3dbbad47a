"""Datasets read in place in their own layouts (Cityscapes, CamVid, VOC, ADE20K, Kvasir-SEG), class presets, and
every broken layout as one line."""

from __future__ import annotations

import json

import cv2
import datasets
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from edgeseg.bundle import Bundle
from edgeseg.runtime.sources import open_source

# layout, fabricate, split query, the bundle's --classes, the class the one-class model predicts everywhere, and
# how the layout's class ids map onto the bundle's (None: the same ids)
CASES = [
    ("cityscapes", datasets.cityscapes, "?split=val", "cityscapes", 0, None),
    ("voc", datasets.voc, "?split=val", "voc", 15, None),
    ("ade20k", datasets.ade20k, "?split=validation", "ade20k", 2, None),
    ("kvasir", datasets.kvasir, "", "kvasir", 1, None),
    # CamVid's colour labels name their classes in class_dict.csv (Road, Sky, Car): scored by name in the 11-class set
    ("camvid", datasets.camvid, "?split=val", "camvid", 3, {0: 3, 1: 0, 2: 8}),
]


def one_class_bundle(tmp_path, capsys, classes: str, winner: int):
    from edgeseg.classes import preset

    bundle = tmp_path / "bundle"
    code, _, err = run_cli(capsys, "export", "user_models:one_class_net", "-o", bundle, "--size", "48x64",
                           "--classes", classes, "--arg", f"num_classes={len(preset(classes)[0])}",
                           "--arg", f"winner={winner}")  # fmt: skip
    assert code == 0, err
    return bundle


@pytest.mark.parametrize("name,fabricate,query,classes,winner,mapping", CASES, ids=[c[0] for c in CASES])
def test_eval_on_each_layout_gives_the_expected_figures(tmp_path, capsys, name, fabricate, query, classes, winner,
                                                        mapping):  # fmt: skip
    labels = fabricate(tmp_path / name)
    bundle = one_class_bundle(tmp_path, capsys, classes, winner)
    code, _, err = run_cli(capsys, "eval", bundle, "--data", f"{name}://{tmp_path / name}{query}", "--json",
                           tmp_path / "e.json")  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    if mapping:
        labels = [np.vectorize(lambda v: mapping.get(int(v), 255))(label) for label in labels]
    scored = np.concatenate([label[label != 255] for label in labels])
    assert np.asarray(result["confusion_matrix"]).sum() == scored.size  # ignored pixels count nowhere
    assert result["pixel_accuracy"] == pytest.approx((scored == winner).mean(), abs=1e-12)
    present = sorted(set(scored.tolist()) | {winner})
    assert result["miou"] == pytest.approx((scored == winner).mean() / len(present), abs=1e-12)
    assert result["frames"] == len(labels)


def test_a_folder_in_a_known_layout_is_recognised(tmp_path, capsys):
    labels = datasets.cityscapes(tmp_path / "cs")
    frames = list(open_source(str(tmp_path / "cs")))
    assert len(frames) == 2 and all(np.array_equal(f.label, e) for f, e in zip(frames, labels))
    assert open_source(str(tmp_path / "cs")).label_names[:3] == ["road", "sidewalk", "building"]


def test_images_and_labels_of_mixed_sizes(tmp_path, capsys):
    """Labels are compared at their own resolution: class maps are resized to each label, nearest."""
    root = tmp_path / "kv"
    datasets.kvasir(root)
    big = np.zeros((96, 160), np.uint8)
    big[:, :40] = 255
    cv2.imwrite(str(root / "images" / "large.png"), np.zeros((96, 160, 3), np.uint8))
    cv2.imwrite(str(root / "masks" / "large.png"), big)
    bundle = one_class_bundle(tmp_path, capsys, "kvasir", 1)
    code, _, err = run_cli(capsys, "eval", bundle, "--data", f"kvasir://{root}", "--json", tmp_path / "e.json")
    assert code == 0, err
    confusion = np.asarray(json.loads((tmp_path / "e.json").read_text())["confusion_matrix"])
    assert confusion.sum() == 2 * 48 * 64 + 96 * 160 and confusion[1, 1] >= 96 * 40


@pytest.mark.parametrize("name,count,first", [("cityscapes", 19, ("road", (128, 64, 128))), ("camvid", 11, None),
                                              ("voc", 21, ("background", (0, 0, 0))), ("ade20k", 150, None),
                                              ("kvasir", 2, None)])  # fmt: skip
def test_class_presets_give_the_standard_names_and_colours(tmp_path, capsys, name, count, first):
    out = tmp_path / "b"
    code, _, err = run_cli(capsys, "export", "lraspp", "-o", out, "--size", "64x64", "--classes", name, "--arg",
                           "width=4")  # fmt: skip
    assert code == 0, err
    classes = Bundle.load(out).classes
    assert len(classes) == count and len({c.name for c in classes}) == count
    if first:
        assert (classes[0].name, tuple(classes[0].color)) == first
    code, stdout, _ = run_cli(capsys, "info", out)
    assert code == 0 and classes[-1].name in stdout


def test_calibrate_and_train_read_a_layout(tmp_path, capsys):
    from edgeseg.models.train import TrainOptions, train

    root = tmp_path / "kv"
    datasets.kvasir(root)
    for index in range(2, 12):  # more frames: calibrate wants a few
        cv2.imwrite(str(root / "images" / f"extra{index}.jpg"), datasets.image(index))
        cv2.imwrite(str(root / "masks" / f"extra{index}.jpg"), np.full((48, 64, 3), 255 * (index % 2), np.uint8))
    summary = train("lraspp", f"kvasir://{root}", tmp_path / "w.pt",
                    TrainOptions(size=(48, 64), epochs=1, steps_per_epoch=2, batch=2, model_options={"width": 4},
                                 progress=False))  # fmt: skip
    assert summary.epochs == 1
    checkpoint = __import__("torch").load(tmp_path / "w.pt", weights_only=False)
    assert [c["name"] for c in checkpoint["classes"]] == ["background", "polyp"]
    bundle = one_class_bundle(tmp_path, capsys, "kvasir", 1)
    code, _, err = run_cli(capsys, "calibrate", bundle, "--data", f"kvasir://{root}", "--count", "6", "--eval-count",
                           "4", "--precision", "fp16")  # fmt: skip
    assert code == 0, err
    assert "mIoU not measured" not in err  # the layout names its classes: the bundle's are the same
    assert "miou" in Bundle.load(bundle).select("onnx", "fp16").extra["fidelity"]


# -- broken layouts -----------------------------------------------------------------------------------
def test_an_image_without_its_label(tmp_path, capsys):
    datasets.cityscapes(tmp_path / "cs")
    next((tmp_path / "cs" / "gtFine").rglob("*_labelIds.png")).unlink()
    code, _, err = run_cli(capsys, "dataset", f"cityscapes://{tmp_path / 'cs'}", "-o", tmp_path / "out")
    assert_one_line_error(code, err, "has no label", "_gtFine_labelIds.png")


def test_a_colour_outside_the_palette(tmp_path, capsys):
    datasets.voc(tmp_path / "voc")
    label = next((tmp_path / "voc" / "SegmentationClass").glob("*.png"))
    cv2.imwrite(str(label), np.full((48, 64, 3), (3, 2, 1), np.uint8))
    code, _, err = run_cli(capsys, "dataset", f"voc://{tmp_path / 'voc'}", "-o", tmp_path / "out")
    assert_one_line_error(code, err, "has the colour (1, 2, 3)", "not in its dataset's palette", label.name)


def test_a_split_list_naming_a_missing_image(tmp_path, capsys):
    datasets.voc(tmp_path / "voc")
    listing = tmp_path / "voc" / "ImageSets" / "Segmentation" / "val.txt"
    listing.write_text(listing.read_text() + "2099_000001\n")
    code, _, err = run_cli(capsys, "dataset", f"voc://{tmp_path / 'voc'}", "-o", tmp_path / "out")
    assert_one_line_error(code, err, "val.txt names '2099_000001'", "does not exist")


def test_a_label_id_outside_the_class_set(tmp_path, capsys):
    datasets.ade20k(tmp_path / "ade")
    label = next((tmp_path / "ade" / "annotations" / "validation").glob("*.png"))
    cv2.imwrite(str(label), datasets.blocks([1, 200]))
    code, _, err = run_cli(capsys, "dataset", f"ade20k://{tmp_path / 'ade'}", "-o", tmp_path / "out")
    assert_one_line_error(code, err, "holds id 200", label.name)


def test_a_split_that_does_not_exist_and_an_unknown_option(tmp_path, capsys):
    datasets.cityscapes(tmp_path / "cs")
    code, _, err = run_cli(capsys, "dataset", f"cityscapes://{tmp_path / 'cs'}?split=test", "-o", tmp_path / "o")
    assert_one_line_error(code, err, "leftImg8bit/test/CITY/")
    code, _, err = run_cli(capsys, "dataset", f"cityscapes://{tmp_path / 'cs'}?spilt=val", "-o", tmp_path / "o")
    assert_one_line_error(code, err, "unknown option spilt", "split=NAME")


def test_missing_parts_of_a_layout(tmp_path, capsys):
    """A dataset folder that is not there, a VOC copy without its split list, a Kvasir image without its mask, a
    Cityscapes label id its table lacks: one line each."""
    code, _, err = run_cli(capsys, "dataset", f"ade20k://{tmp_path / 'nowhere'}", "-o", tmp_path / "o1")
    assert_one_line_error(code, err, "does not exist")
    datasets.voc(tmp_path / "voc")
    (tmp_path / "voc" / "ImageSets" / "Segmentation" / "val.txt").unlink()
    code, _, err = run_cli(capsys, "dataset", f"voc://{tmp_path / 'voc'}", "-o", tmp_path / "o2")
    assert_one_line_error(code, err, "val.txt' does not exist", "ImageSets/Segmentation/SPLIT.txt")
    datasets.kvasir(tmp_path / "kv")
    next((tmp_path / "kv" / "masks").glob("*.jpg")).unlink()
    code, _, err = run_cli(capsys, "dataset", f"kvasir://{tmp_path / 'kv'}", "-o", tmp_path / "o3")
    assert_one_line_error(code, err, "has no mask in")
    datasets.cityscapes(tmp_path / "cs")
    label = next((tmp_path / "cs" / "gtFine").rglob("*_labelIds.png"))
    cv2.imwrite(str(label), datasets.blocks([7, 40]))
    code, _, err = run_cli(capsys, "dataset", f"cityscapes://{tmp_path / 'cs'}", "-o", tmp_path / "o4")
    assert_one_line_error(code, err, "holds id 40", "Cityscapes' label table lacks")
