"""Property-based tests on the parsers users feed text to. The property everywhere: a correct result, or an
EdgesegError of one line; never another exception."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import TINY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeseg.bundle import Bundle
from edgeseg.classes import classes_from_option, read_names_file
from edgeseg.cli import build_parser, parse_model_args
from edgeseg.errors import EdgesegError
from edgeseg.runtime.sinks import open_sink
from edgeseg.runtime.sources import StreamOptions, open_source
from edgeseg.tables import printable

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


def one_line(error: EdgesegError) -> None:
    """As the CLI prints it (through printable, which shows a newline in a user's value as \\n): one line."""
    assert str(error).strip() and "\n" not in printable(str(error))


def expect_result_or_one_line(function, *args):
    try:
        return function(*args)
    except EdgesegError as exc:
        one_line(exc)
        return None


# -- source and sink URIs, with their query options -----------------------------------------------
SCHEMES = st.sampled_from(["synthetic", "csi", "gst", "v4l2", "file", "ftp", "rtsp", "weird", ""])
OPTIONS = st.dictionaries(
    st.sampled_from(["seed", "size", "frames", "fps", "realtime", "decoder", "zzz"]),
    st.one_of(st.integers(-5, 10**6).map(str), TEXT, st.just("3-1"), st.just("64x48"), st.just("0x0")),
    max_size=4,
)


@SETTINGS
@given(scheme=SCHEMES, name=st.sampled_from(["driving", "medical", "nowhere", ""]), options=OPTIONS)
def test_source_uris(scheme, name, options):
    query = "&".join(f"{k}={v}" for k, v in options.items())
    uri = f"{scheme}://{name}?{query}" if scheme else f"{name}?{query}"
    if scheme in ("rtsp", "gst"):  # these would open network or pipeline connections; URIs only
        return
    source = expect_result_or_one_line(open_source, uri, StreamOptions(timeout=0.5))
    if source is not None:
        try:
            frame = source.read()
            assert frame is None or frame.image.ndim == 3
        except EdgesegError as exc:
            one_line(exc)
        finally:
            source.close()


@SETTINGS
@given(
    uri=st.one_of(TEXT, st.builds(lambda s, t: f"{s}://{t}", st.sampled_from(["display", "ftp", "file", "zz"]), TEXT))
)
def test_sink_uris(uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative file:// URI makes its folder in the working directory, not the repo
    if uri.startswith(("http://", "udp://", "rtsp://")) or "\x00" in uri:
        return
    sink = expect_result_or_one_line(open_sink, str(tmp_path / "out" / uri.lstrip("/")) if "://" not in uri else uri)
    if sink is not None:
        sink.close()


# -- --size, --arg, --classes -------------------------------------------------------------------------
@SETTINGS
@given(text=st.one_of(TEXT, st.builds(lambda a, b: f"{a}x{b}", st.integers(-10, 10**9), st.integers(-10, 10**9))))
def test_size(text, capsys):
    try:
        args = build_parser().parse_args(["export", "unet", "-o", "out", "--size", text])
        height, width = args.size
        assert height >= 8 and width >= 8
    except SystemExit as exc:
        assert exc.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgeseg: error: edgeseg export: argument --size")


@SETTINGS
@given(pairs=st.lists(st.one_of(TEXT, st.builds(lambda k, v: f"{k}={v}", TEXT, TEXT)), max_size=5))
def test_model_args(pairs):
    options = expect_result_or_one_line(parse_model_args, pairs)
    if options is not None:
        assert all(isinstance(key, str) and key for key in options)


LINE = st.one_of(
    TEXT,
    st.builds(
        lambda n, r, g, b: f"{n} {r} {g} {b}", TEXT, st.integers(-5, 300), st.integers(0, 999), st.integers(0, 255)
    ),
    st.builds(lambda n: f"{n}, 1, 2, 3", TEXT),
    st.just(""),
    st.just("# a comment"),
    st.just("road\x1b[31m"),
)


@SETTINGS
@given(lines=st.lists(LINE, max_size=12))
def test_class_names_files(lines, tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    classes = expect_result_or_one_line(read_names_file, path)
    if classes is not None:
        assert len(classes) >= 2 and all(c.name and all(0 <= v <= 255 for v in c.color) for c in classes)


@SETTINGS
@given(value=TEXT)
def test_classes_option(value):
    if "\x00" in value:
        return
    expect_result_or_one_line(classes_from_option, value)


# -- labelled folders ---------------------------------------------------------------------------------
@SETTINGS
@given(
    images=st.lists(st.sampled_from(["a.png", "b.jpg", "c.txt", "d.png", "e.PNG"]), unique=True, max_size=4),
    labels=st.lists(st.sampled_from(["a.png", "b.png", "d.png", "x.png", "e.png"]), unique=True, max_size=4),
    broken=st.booleans(),
)
def test_labelled_folder_layouts(images, labels, broken, tmp_path):
    import cv2
    import numpy as np

    root = tmp_path / "set"
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in images:
        if (broken and name.startswith("a")) or name.endswith(".txt"):
            (root / "images" / name).write_bytes(b"not an image")
        else:
            cv2.imwrite(str(root / "images" / name), np.zeros((16, 16, 3), np.uint8))
    for name in labels:
        cv2.imwrite(str(root / "labels" / name), np.zeros((16, 16), np.uint8))
    source = expect_result_or_one_line(open_source, str(root))
    if source is not None:
        try:
            for frame in source:
                assert frame.label is not None and frame.label.shape == frame.image.shape[:2]
        except EdgesegError as exc:
            one_line(exc)
        finally:
            source.close()


# -- manifest.json mutations ----------------------------------------------------------------------------
HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    TEXT,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(TEXT, st.integers(), max_size=2),
    st.just("../../etc/passwd"),
    st.just("/etc/passwd"),
)


def paths_in(value, prefix=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from paths_in(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield prefix + (index,)
            yield from paths_in(item, prefix + (index,))


@pytest.fixture(scope="module")
def manifest_text(tmp_path_factory):
    from edgeseg.cli import main

    out = tmp_path_factory.mktemp("manifest") / "b"
    assert main(["export", "unet", "-o", str(out), *TINY]) == 0
    return out


@SETTINGS
@given(data=st.data())
def test_manifest_mutations(manifest_text, data, tmp_path):
    bundle_dir = tmp_path / "bundle"
    shutil.rmtree(bundle_dir, ignore_errors=True)
    shutil.copytree(manifest_text, bundle_dir)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(paths_in(manifest))
        path = data.draw(st.sampled_from(paths))
        parent = manifest
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(HOSTILE_VALUES)
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest))
    bundle = expect_result_or_one_line(Bundle.load, bundle_dir)
    if bundle is None:
        return
    from edgeseg.tools.info import describe_bundle

    expect_result_or_one_line(describe_bundle, bundle)
    for getter in (lambda: bundle.classes, lambda: bundle.input, lambda: bundle.output):
        expect_result_or_one_line(getter)
    try:
        for artifact in bundle.artifacts:
            expect_result_or_one_line(bundle.artifact_path, artifact)
    except EdgesegError as exc:
        one_line(exc)


def test_a_manifest_path_out_of_the_bundle_is_refused(manifest_text, tmp_path):
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(manifest_text, bundle_dir)
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    manifest["artifacts"][0]["path"] = "../../outside.onnx"
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgesegError, match="outside the bundle"):
        Bundle.load(bundle_dir).artifact_path(Bundle.load(bundle_dir).artifacts[0])


def test_properties_cover_every_parser_named_in_the_issue():
    assert Path(__file__).read_text().count("@given") >= 8
