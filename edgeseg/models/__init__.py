"""The model zoo: seed families written here (torch only; imported by export and training, never the runtime)."""

from edgeseg.models.zoo import ZOO, ZooEntry, build_model, check_size, shipped_weights, zoo_entry

__all__ = ["ZOO", "ZooEntry", "build_model", "check_size", "shipped_weights", "zoo_entry"]
