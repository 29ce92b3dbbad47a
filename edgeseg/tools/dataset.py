"""`edgeseg dataset`: a labelled source written as a labelled folder (images/ + labels/)."""

from __future__ import annotations

from pathlib import Path

import cv2

from edgeseg.data.coco import INSTANCES_FILE, CocoWriter, read_instances
from edgeseg.data.keypoints import KEYPOINTS_FILE, KeypointWriter, read_keypoints
from edgeseg.data.synthetic import INSTANCE_CLASSES
from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_directory
from edgeseg.redact import redact
from edgeseg.runtime.sources import open_source


def write_labelled_folder(source_uri: str, output: Path, force: bool = False) -> int:
    """Write every frame of a labelled source (synthetic://...) as images/NNNNNN.png + labels/NNNNNN.png, and
    with `instances=1` each object as COCO JSON with RLE masks (instances.json), with `keypoints=1` each grasper's
    keypoints as COCO keypoints JSON (keypoints.json)."""
    source = open_source(source_uri)
    count = 0
    coco = None
    keypoints = None
    with atomic_directory(output, replace=force) as scratch:
        (scratch / "images").mkdir()
        (scratch / "labels").mkdir()
        for frame in source:
            if frame.label is None:
                raise EdgesegError(
                    f"'{redact(source_uri)}' has no labels; only synthetic:// sources can be written as a labelled "
                    "folder"
                )
            for folder, image in (("images", frame.image), ("labels", frame.label)):
                if not cv2.imwrite(str(scratch / folder / f"{frame.index:06d}.png"), image):
                    raise EdgesegError(f"cannot write {folder}/{frame.index:06d}.png under '{output}'")
            if frame.instances is not None:
                coco = coco or CocoWriter(source.classes, INSTANCE_CLASSES)
                coco.add(f"{frame.index:06d}.png", frame.instances, frame.label)
            if frame.keypoints is not None:
                keypoints = keypoints or KeypointWriter(source.keypoint_schema)
                keypoints.add(f"{frame.index:06d}.png", frame.keypoints, *frame.label.shape)
            count += 1
        if coco is not None:
            coco.save(scratch / INSTANCES_FILE)
        if keypoints is not None:
            keypoints.save(scratch / KEYPOINTS_FILE)
        check_labels(scratch, output)
    return count


def check_labels(scratch: Path, output: Path) -> None:
    """The label files, read back by the readers eval and train use, before the folder is in place: a file they
    would refuse is never left at `output`."""
    try:
        if (scratch / INSTANCES_FILE).is_file():
            read_instances(scratch / INSTANCES_FILE, scratch / "images")
        if (scratch / KEYPOINTS_FILE).is_file():
            read_keypoints(scratch / KEYPOINTS_FILE, scratch / "images")
    except EdgesegError as reason:
        shown = str(reason).replace(str(scratch), str(output))
        raise EdgesegError(f"internal: the labels written for '{output}' fail their own check ({shown}); nothing "
                           "was kept") from None  # fmt: skip
