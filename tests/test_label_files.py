"""COCO instance and keypoint JSON from other tools: each bad annotation is one line naming the file, its id and
what is wrong, before anything uses it (issue 33, part 4)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg.data.coco import INSTANCES_FILE, read_instances, rle_string_counts
from edgeseg.data.keypoints import KEYPOINTS_FILE, read_keypoints
from edgeseg.errors import EdgesegError
from edgeseg.tools.dataset import write_labelled_folder

pytest.importorskip("pycocotools")


@pytest.fixture(scope="module")
def instance_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("labelled") / "driving"
    write_labelled_folder("synthetic://driving?instances=1&frames=3&size=64x48&seed=4", root)
    return root


@pytest.fixture(scope="module")
def keypoint_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("labelled") / "medical"
    write_labelled_folder("synthetic://medical?keypoints=1&frames=3&size=64x48", root)
    return root


def damaged(folder: Path, tmp_path: Path, name: str, damage) -> Path:
    copy_root = tmp_path / folder.name
    shutil.copytree(folder, copy_root)
    document = json.loads((copy_root / name).read_text())
    damage(document)
    (copy_root / name).write_text(json.dumps(document))
    return copy_root


def first(document):
    return document["annotations"][0]


INSTANCE_DAMAGE = {
    "invalid RLE counts": (lambda d: first(d)["segmentation"].update(counts="\x7f\x7f~~"), "invalid RLE counts"),
    "RLE runs that do not cover the image": (lambda d: first(d)["segmentation"].update(counts="52"), "cover"),
    "a string bbox": (lambda d: first(d).update(bbox="10,10,5,5"), "bbox"),
    "an image_id no image has": (lambda d: first(d).update(image_id=999), "image_id 999"),
    "a polygon with an odd number of coordinates": (
        lambda d: first(d).update(segmentation=[[1, 1, 20, 1, 20]]), "odd number of coordinates"),
    "a category the file does not list": (lambda d: first(d).update(category_id=77), "category_id 77"),
    "an RLE of another size": (lambda d: first(d)["segmentation"].update(size=[10, 10]), "10x10"),
    "an annotation that is not an object": (lambda d: d["annotations"].insert(0, "oops"), "not a JSON object"),
    "an image declared beyond the pixel budget": (
        lambda d: d["images"][0].update(height=100000, width=100000), "over the budget"),
}  # fmt: skip


def refused_in_one_line(folder: Path, tmp_path: Path, capsys, bundle: Path, name: str, read, damage, fragment) -> str:
    """The damaged file refused by its reader and by a run on its folder, each in one line naming the file and
    the fragment; the reader's message is returned."""
    root = damaged(folder, tmp_path, name, damage)
    with pytest.raises(EdgesegError, match=name) as caught:
        read(root / name, root / "images")
    assert fragment.lower() in str(caught.value).lower()
    code, _, err = run_cli(capsys, "run", bundle, "-i", root, "-o", "none")
    assert_one_line_error(code, err, name, fragment)
    return str(caught.value)


@pytest.mark.parametrize("case", sorted(INSTANCE_DAMAGE))
def test_each_bad_instance_annotation_is_one_line(instance_folder, tmp_path, capsys, tiny_bundle, case):
    damage, fragment = INSTANCE_DAMAGE[case]
    line = refused_in_one_line(instance_folder, tmp_path, capsys, tiny_bundle, INSTANCES_FILE, read_instances, damage,
                               fragment)  # fmt: skip
    if "not an object" not in case and "image declared" not in case:
        assert "annotation 1 " in line  # the annotation's own id


def test_the_line_counts_the_other_bad_annotations(instance_folder, tmp_path):
    def damage(document):
        for annotation in document["annotations"][:3]:
            annotation["bbox"] = "nope"

    root = damaged(instance_folder, tmp_path, INSTANCES_FILE, damage)
    with pytest.raises(EdgesegError, match=r"annotation 1 has bbox 'nope'.*\(2 more bad annotation\(s\) after it\)"):
        read_instances(root / INSTANCES_FILE, root / "images")


def test_polygons_and_uncompressed_rle_are_read(instance_folder, tmp_path):
    truth = read_instances(instance_folder / INSTANCES_FILE, instance_folder / "images")

    def damage(document):
        first(document)["segmentation"] = [[2, 2, 30, 2, 30, 20, 2, 20]]
        second = document["annotations"][1]
        height, width = second["segmentation"]["size"]
        second["segmentation"] = {"size": [height, width], "counts": [5, 10, height * width - 15]}

    root = damaged(instance_folder, tmp_path, INSTANCES_FILE, damage)
    planes = read_instances(root / INSTANCES_FILE, root / "images")
    assert planes.keys() == truth.keys()
    name = next(iter(planes))
    assert np.count_nonzero(planes[name][0] == 1) > 200  # the polygon's rectangle


def test_compressed_counts_match_pycocotools():
    masks = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    for _ in range(50):
        height, width = rng.integers(1, 30, 2)
        plane = (rng.random((height, width)) < rng.random()).astype(np.uint8)
        rle = masks.encode(np.asfortranarray(plane))
        counts = rle_string_counts(rle["counts"].decode())
        assert sum(counts) == height * width and min(counts) >= 0


KEYPOINT_DAMAGE = {
    "too few values": (lambda d: first(d).update(keypoints=[1, 2, 2]), "does not hold"),
    "a string value": (lambda d: first(d)["keypoints"].__setitem__(0, "x"), "not a finite number"),
    "an image_id no image has": (lambda d: first(d).update(image_id="nowhere"), "image_id 'nowhere'"),
    "a visibility of 5": (lambda d: first(d)["keypoints"].__setitem__(2, 5), "visibility"),
    "another category": (lambda d: first(d).update(category_id=99), "category_id 99"),
    "a string bbox": (lambda d: first(d).update(bbox="1 2 3 4"), "bbox"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(KEYPOINT_DAMAGE))
def test_each_bad_keypoint_annotation_is_one_line(keypoint_folder, tmp_path, capsys, tiny_bundle, case):
    damage, fragment = KEYPOINT_DAMAGE[case]
    line = refused_in_one_line(keypoint_folder, tmp_path, capsys, tiny_bundle, KEYPOINTS_FILE, read_keypoints, damage,
                               fragment)  # fmt: skip
    assert "annotation 1 " in line


def test_a_skeleton_naming_a_keypoint_that_is_not_there(keypoint_folder, tmp_path):
    root = damaged(keypoint_folder, tmp_path, KEYPOINTS_FILE, lambda d: d["categories"][0].update(skeleton=[[1, 40]]))
    with pytest.raises(EdgesegError, match="skeleton"):
        read_keypoints(root / KEYPOINTS_FILE, root / "images")


# -- fuzz: whatever a file holds, the readers answer with their result or one EdgesegError -------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 100) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["id", "image_id", "category_id", "segmentation", "bbox", "keypoints", "counts", "size", "height", "width",
          "file_name", "images", "annotations", "categories", "skeleton"]  # fmt: skip
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def mutate(document, path: list, value):
    """Set `value` at a spot chosen by `path` (indices into the nested document); a missing step stops early."""
    node = document  # a dict or a list at every step
    for step in path[:-1]:
        children = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        if not children:
            break
        child = node[children[step % len(children)]]
        if not isinstance(child, (dict, list)):
            break
        node = child
    if isinstance(node, dict):
        keys = list(node.keys()) + FIELDS
        node[keys[path[-1] % len(keys)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value


def check_reader(folder: Path, tmp_path: Path, name: str, read, edits) -> None:
    document = json.loads((folder / name).read_text())
    changed = copy.deepcopy(document)
    for path, value in edits:
        mutate(changed, path, value)
    (tmp_path / name).write_text(json.dumps(changed))
    try:
        read(tmp_path / name, folder / "images")
    except EdgesegError as exc:
        assert "\n" not in str(exc)


EDITS = st.lists(st.tuples(st.lists(st.integers(0, 50), min_size=1, max_size=5), JSON), min_size=1, max_size=3)


@FUZZ
@given(edits=EDITS)
def test_fuzzed_instance_files_never_crash_the_reader(instance_folder, tmp_path_factory, edits):
    check_reader(instance_folder, tmp_path_factory.mktemp("fuzz"), INSTANCES_FILE, read_instances, edits)


@FUZZ
@given(edits=EDITS)
def test_fuzzed_keypoint_files_never_crash_the_reader(keypoint_folder, tmp_path_factory, edits):
    check_reader(keypoint_folder, tmp_path_factory.mktemp("fuzz"), KEYPOINTS_FILE, read_keypoints, edits)
