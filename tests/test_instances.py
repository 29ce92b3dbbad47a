"""Instance labels: the driving scene's objects each with an id, written and read as COCO JSON with RLE masks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

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
    assert "is 64x48 but" in err or "instances.json says" in err


def test_coco_json_that_is_not_json(written, capsys, tiny_bundle):
    (written / "instances.json").write_text("{not json")
    code, _, err = run_cli(capsys, "eval", tiny_bundle, "--data", written)
    assert_one_line_error(code, err, "is not COCO instance JSON")


def test_instances_on_a_scene_without_objects(capsys, tmp_path):
    code, _, err = run_cli(capsys, "dataset", "synthetic://medical?frames=2&instances=1", "-o", tmp_path / "m")
    assert_one_line_error(code, err, "instances=1 needs a scene with countable objects")
