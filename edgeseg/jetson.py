"""Whether this machine is a Jetson: L4T writes its release to this file, and nothing else does."""

from __future__ import annotations

from pathlib import Path

TEGRA_RELEASE = Path("/etc/nv_tegra_release")


def on_jetson() -> bool:
    return TEGRA_RELEASE.is_file()
