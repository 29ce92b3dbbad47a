"""The bundles the tests share, each made once per test run by edgeseg's own commands.

A test run may be several processes: pytest-xdist's workers, and the JetPack stand-ins' background job
(tests/jetpack_standin.py), which runs the runtime's tests on bundles the desktop made. They share one folder of
recipes (`shared_root(config) / "recipes"`): whichever process first needs a recipe makes it while holding its
lock; the others wait for it, then use it. A recipe is made in a partial folder and renamed when done, so a run
that was interrupted never leaves a bundle a later process would trust.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from edgeseg.cli import main

# A tiny model: 64x64, three classes, width 4 (fast to export, train and check).
TINY = ("--size", "64x64", "--classes", "3", "--arg", "width=4")

# {out} is the bundle's folder. Export needs torch, which a JetPack's Python cannot have: for the runtime tests on
# the JetPack stand-ins (test_jetpack.py), the desktop makes these first and EDGESEG_TEST_BUNDLES names the folder
# that holds them, one per name.
BUNDLE_RECIPES: dict[str, list[list[str]]] = {
    # a 3-class U-Net (width 4) exported at 64x64 with fused pre/post-processing
    "unet": [["export", "unet", "-o", "{out}", *TINY]],
    "unet-dynamic-batch": [["export", "unet", "-o", "{out}", *TINY, "--dynamic-batch"]],
    "lraspp-batch3": [["export", "lraspp", "-o", "{out}", *TINY, "--batch", "3"]],
    "lraspp-dynamic-batch": [["export", "lraspp", "-o", "{out}", *TINY, "--dynamic-batch"]],
    "fcn8s-logits": [["export", "fcn8s", "-o", "{out}", *TINY, "--no-fuse-argmax", "--no-fuse-preprocess"]],
    # the trained medical U-Net (exported at 240x320) with a graph that takes any size
    "demo-medical-dynamic-size": [["export", "demo-medical", "-o", "{out}", "--dynamic-size"]],
    "demo-medical": [["export", "demo-medical", "-o", "{out}"]],
    # the three shipped demos, one per bundle kind: semantic, instances, keypoints (the Python API's tests)
    "demo-driving": [["export", "demo-driving", "-o", "{out}"]],
    "demo-driving-instances": [["export", "demo-driving-instances", "-o", "{out}"]],
    "demo-medical-tips": [["export", "demo-medical-tips", "-o", "{out}"]],
    # the tiny U-Net with an FP16 variant only: what `--precision best` picks on a CPU without INT8
    "unet-fp16": [
        ["export", "unet", "-o", "{out}", *TINY],
        ["calibrate", "{out}", "--data", "synthetic://driving?seed=1&frames=8&size=64x64", "--precision", "fp16",
         "--count", "4", "--eval-count", "2"],
    ],  # fmt: skip
    # fp32, fp16 and int8 variants of the tiny U-Net
    "unet-calibrated": [
        ["export", "unet", "-o", "{out}", *TINY],
        ["calibrate", "{out}", "--data", "synthetic://driving?seed=1&frames=12&size=64x64", "--count", "4",
         "--eval-count", "2", "--method", "minmax"],
    ],  # fmt: skip
}

MADE = ".made"  # written last in a finished recipe's folder


def shared_root(basetemp: Path) -> Path:
    """The folder every process of this test run sees: pytest's base temporary folder, or in a pytest-xdist worker
    the workers' common parent (each worker's own is `<root>/popen-gwN`)."""
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def make_bundle(name: str, out: Path) -> Path:
    """Run the recipe's commands; the bundle is at `out`."""
    for argv in BUNDLE_RECIPES[name]:
        assert main([arg.format(out=out) for arg in argv]) == 0, f"bundle {name}: {argv}"
    return out


def shared_recipe(recipes: Path, name: str) -> Path:
    """The test run's one bundle of a recipe under `recipes`, never to be changed: made here if no process of this
    run has made it yet."""
    done = recipes / name
    if (done / MADE).is_file():
        return done
    recipes.mkdir(parents=True, exist_ok=True)
    with open(recipes / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process making it: wait, then use what it made
        if not (done / MADE).is_file():
            partial = recipes / f"{name}.partial-{os.getpid()}"
            shutil.rmtree(partial, ignore_errors=True)
            make_bundle(name, partial)
            (partial / MADE).write_text(name)
            partial.rename(done)
    return done


def copy_bundle(source: Path, out: Path) -> Path:
    """A copy of a shared bundle, without the recipe's own marker."""
    shutil.copytree(source, out, ignore=shutil.ignore_patterns(MADE))
    return out
