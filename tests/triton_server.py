"""A real Triton Inference Server for the tests: this file runs it (with the triton-server venv's Python), and the
tests start, wait for and stop it with the functions below (from their own Python).

    python tests/triton_server.py MODEL NAME GRPC_PORT HTTP_PORT METRICS_PORT [--frame-shape H,W,3]

nvidia-pytriton starts a real tritonserver binary; the model is a Python-backend model whose function runs an ONNX
graph with ONNX Runtime (pytriton's tritonserver has no ONNX Runtime backend). MODEL is a bundle's ONNX (served with
batches of up to 4, its uint8 input and first output), or a model folder of the repository `edgeseg deploy --target
triton` wrote: then its config.pbtxt says what is served (names, types, dims, max_batch_size), and tritonserver
checks it as it checks any model's config, and its 1/model.onnx answers. `--frame-shape` declares another input
shape, to serve a model that does not match the bundle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SERVER_PYTHON = REPO / ".venv" / "triton-server" / "bin" / "python"


# -- the tests' side -------------------------------------------------------------------------------------------------
def start_server(model: Path, name: str, ports: list[int], *extra: str) -> subprocess.Popen:
    """This file as a server of `model` named `name` on (grpc, http, metrics) ports; its log in `process.log`."""
    grpc, http, metrics = ports
    log = tempfile.TemporaryFile("w+")  # tritonserver logs a lot: a pipe nobody reads would stall it
    process = subprocess.Popen(
        [str(SERVER_PYTHON), __file__, str(model), name, str(grpc), str(http), str(metrics), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, tritonserver in it: stop_server can end them together
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def wait_ready(name: str, grpc: int, process: subprocess.Popen, timeout: float = 180) -> None:
    """Until the model is ready; the calling test skips, with the server's last words, where it never is."""
    import pytest
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.is_model_ready(name):
                return
        except Exception:  # not listening yet
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.log.seek(0)  # type: ignore[attr-defined]
            pytest.skip(f"tritonserver did not come up on this machine: {process.log.read()[-400:]}")  # type: ignore[attr-defined]
        time.sleep(0.5)


def stop_server(process: subprocess.Popen) -> None:
    """Ctrl-C, as a user stops it; where it lingers (under pytest it sometimes waits out a 30 s timeout after
    unloading the model), its process group is killed, tritonserver included, so its ports are free again."""
    process.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # the wrapper may be gone while its tritonserver is not
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    process.log.close()  # type: ignore[attr-defined]


def require_server_venv() -> None:
    import pytest

    if not SERVER_PYTHON.is_file():
        pytest.skip("the Triton server venv (.venv/triton-server, made by make test) is not installed")


# -- the server's side (the triton-server venv) ----------------------------------------------------------------------
def bundle_model(model_path: str, argv: list[str]) -> tuple[list[Any], list[Any], Any, Any]:
    """A bundle's ONNX: its uint8 frame input and first output, batched by Triton up to 4."""
    import numpy as np
    import onnxruntime
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor

    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    graph_input, graph_output = session.get_inputs()[0], session.get_outputs()[0]
    frame_shape = (
        tuple(int(v) for v in argv[argv.index("--frame-shape") + 1].split(","))
        if "--frame-shape" in argv
        else tuple(graph_input.shape[1:])
    )

    @batch
    def infer(**inputs: Any) -> dict[str, Any]:
        frames = inputs[graph_input.name]
        return {
            graph_output.name: np.concatenate(
                [session.run(None, {graph_input.name: frames[i : i + 1]})[0] for i in range(len(frames))]
            )
        }

    inputs = [Tensor(name=graph_input.name, dtype=np.uint8, shape=frame_shape)]
    outputs = [Tensor(name=graph_output.name, dtype=np.uint8, shape=tuple(graph_output.shape[1:]))]
    return inputs, outputs, ModelConfig(max_batch_size=4), infer


def deployed_model(folder: Path) -> tuple[list[Any], list[Any], Any, Any]:
    """A model folder deploy wrote, served as its config.pbtxt declares it and answered by its 1/model.onnx."""
    import numpy as np
    import onnxruntime
    from google.protobuf import text_format
    from pytriton.model_config import ModelConfig, Tensor
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    numpy_of = {"TYPE_UINT8": np.uint8, "TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT32": np.int32,
                "TYPE_INT64": np.int64}  # fmt: skip

    def tensors(specs: Any) -> list[Any]:
        if any(spec.HasField("reshape") for spec in specs):
            raise SystemExit("this test server has no reshape (pytriton writes its own config)")
        return [Tensor(name=s.name, dtype=numpy_of[model_config_pb2.DataType.Name(s.data_type)], shape=tuple(s.dims))
                for s in specs]  # fmt: skip

    session = onnxruntime.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [spec.name for spec in config.output]

    def infer(requests: list[Any]) -> list[dict[str, Any]]:
        # Unbatched (max_batch_size 0): each request is one whole input, answered as the graph answers it.
        return [dict(zip(names, session.run(names, dict(request)))) for request in requests]

    model_config = ModelConfig(batching=config.max_batch_size > 0, max_batch_size=config.max_batch_size)
    return tensors(config.input), tensors(config.output), model_config, infer


def serve(argv: list[str]) -> None:
    import sysconfig

    from pytriton.triton import Triton, TritonConfig

    # The Python-backend stub loads libpython dynamically: point it at this interpreter's own, or a
    # system libpython of another patch level gets mixed with this interpreter's standard library.
    os.environ["LD_LIBRARY_PATH"] = ":".join(
        filter(None, [sysconfig.get_config_var("LIBDIR"), os.environ.get("LD_LIBRARY_PATH")])
    )
    model, name, grpc_port, http_port, metrics_port = argv[:5]
    inputs, outputs, model_config, infer = (
        deployed_model(Path(model)) if Path(model).is_dir() else bundle_model(model, argv)
    )
    # A test stops the server when it is done with it: nothing is in flight then worth 30 s (Triton's default) of
    # waiting for a model whose Python stub has answered to unload.
    config = TritonConfig(grpc_port=int(grpc_port), http_port=int(http_port), metrics_port=int(metrics_port),
                          exit_timeout_secs=3)  # fmt: skip
    with Triton(config=config) as triton:
        triton.bind(model_name=name, infer_func=infer, inputs=inputs, outputs=outputs, config=model_config)
        print("serving", flush=True)
        triton.serve()


if __name__ == "__main__":
    import sys

    serve(sys.argv[1:])
