"""Soak benchmark (not a test): `edgeseg run` on a looping live stream for N minutes.

    python -m edgeseg.bench.soak BUNDLE --minutes 10 [--video FILE] [--csv soak.csv]

ffmpeg loops a real video to udp://127.0.0.1 as a camera would; `edgeseg run` reads it and serves
the live view; each second this samples the run's resident memory (/proc) and its FPS (the live
view's /stats.json). The summary gives memory growth and FPS stability.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

DEFAULT_VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(bundle: str, minutes: float, video: str, csv_path: Path | None) -> dict[str, float]:
    udp, http = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    sender = subprocess.Popen(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            video,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "10",
            "-f",
            "mpegts",
            f"udp://127.0.0.1:{udp}?pkt_size=1316",
        ],
        stdin=subprocess.DEVNULL,
    )
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeseg",
            "run",
            bundle,
            "-i",
            f"udp://127.0.0.1:{udp}",
            "-o",
            f"http://127.0.0.1:{http}",
            "-o",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples = []
    try:
        time.sleep(5)  # let the stream open and settle
        start, last_frames = time.monotonic(), None
        while time.monotonic() - start < minutes * 60:
            time.sleep(1.0)
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/stats.json", timeout=5) as response:
                stats = json.loads(response.read())
            fps = (stats["frames"] - last_frames) if last_frames is not None else float("nan")
            last_frames = stats["frames"]
            samples.append((round(time.monotonic() - start, 1), resident_mib(run.pid), fps, stats["frames"]))
            if len(samples) % 60 == 0:
                print(f"{samples[-1][0]:.0f} s: {samples[-1][1]:.1f} MiB, {fps:.1f} FPS", file=sys.stderr, flush=True)
    finally:
        run.send_signal(signal.SIGINT)
        run.wait(timeout=60)
        sender.kill()
    if csv_path:
        with open(csv_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["seconds", "rss_mib", "fps", "frames"])
            writer.writerows(samples)
    rss = np.array([s[1] for s in samples])
    fps = np.array([s[2] for s in samples[1:]])
    minute = min(60, len(rss) // 4)
    return {
        "seconds": samples[-1][0],
        "frames": samples[-1][3],
        "rss_first_minute_mib": float(rss[:minute].mean()),
        "rss_last_minute_mib": float(rss[-minute:].mean()),
        "rss_growth_mib": float(rss[-minute:].mean() - rss[:minute].mean()),
        "rss_max_mib": float(rss.max()),
        "fps_mean": float(fps.mean()),
        "fps_std": float(fps.std()),
        "fps_min": float(fps.min()),
        "fps_p5": float(np.percentile(fps, 5)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--video", default=DEFAULT_VIDEO)
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    print(json.dumps(soak(args.bundle, args.minutes, args.video, args.csv), indent=2))


if __name__ == "__main__":
    main()
