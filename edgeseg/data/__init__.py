"""Labelled data: procedural driving and medical scenes (numpy + OpenCV only, so the runtime can use them)."""
