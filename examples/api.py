"""edgeseg from Python: a bundle's model on a stream, then on one frame. Any bundle kind: semantic, instances or
keypoints. Run: python examples/api.py BUNDLE SOURCE   (e.g. a video file, an image folder, rtsp://cam/1, /dev/video0)
"""

import sys

import cv2

import edgeseg

bundle, source = sys.argv[1], sys.argv[2]
with edgeseg.load(bundle, backend="auto", precision="best") as model:  # what `edgeseg run` would pick
    for frame, result in edgeseg.stream(model, source, outputs=["out.mp4"]):  # `run`'s pipeline, as an iterator
        height, width = frame.shape[:2]  # frame: the BGR picture the source gave
        if result.class_map is not None:  # semantic: HxW uint8 class ids at the frame's size
            print(f"{width}x{height} classes:", sorted(set(result.class_map.flatten().tolist())))
        for found in result.instances or []:  # instances: box, score, class name, mask
            print(found.class_name, round(found.score, 2), [round(v) for v in found.box], int(found.mask.sum()))
        for point in result.keypoints or []:  # keypoints: name, x, y, confidence, object
            print(point.name, round(point.x), round(point.y), round(point.confidence, 2), point.object)
    again = model(frame)  # the last frame once more, answered on this thread
    cv2.imwrite("last.jpg", again.plot(frame))  # drawn as `run` draws it
