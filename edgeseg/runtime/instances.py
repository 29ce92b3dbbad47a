"""Instance bundles at run time, by the names bench, calibration and tools import: the head is
runtime/heads/instances.py, the model on its backend runtime/detector.py, the loop runtime/pipeline.py."""

from edgeseg.runtime.detector import InstanceDetector
from edgeseg.runtime.heads.instances import Detections, detection_records, draw_instances, shown

__all__ = ["Detections", "InstanceDetector", "detection_records", "draw_instances", "shown"]
