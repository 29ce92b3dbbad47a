"""Instance bundles at run time, by the names bench, calibration and tools import: the head is
runtime/heads/instances.py, the model on its backend and the loop that runs it runtime/detector.py."""

from edgeseg.runtime.detector import InstanceDetector
from edgeseg.runtime.detector import run_model as run_instances
from edgeseg.runtime.heads.instances import Detections, detection_records, draw_instances, shown

__all__ = ["Detections", "InstanceDetector", "detection_records", "draw_instances", "run_instances", "shown"]
