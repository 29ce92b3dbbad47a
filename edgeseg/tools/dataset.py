"""`edgeseg dataset`: a labelled source written as a labelled folder (images/ + labels/)."""

from __future__ import annotations

from pathlib import Path

import cv2

from edgeseg.data.coco import INSTANCES_FILE, CocoWriter
from edgeseg.data.keypoints import KEYPOINTS_FILE, KeypointWriter
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
            cv2.imwrite(str(scratch / "images" / f"{frame.index:06d}.png"), frame.image)
            cv2.imwrite(str(scratch / "labels" / f"{frame.index:06d}.png"), frame.label)
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
    return count
