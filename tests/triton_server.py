"""A real Triton Inference Server for the tests (run with the triton-server venv's Python).

    python tests/triton_server.py MODEL_ONNX NAME GRPC_PORT HTTP_PORT METRICS_PORT [--frame-shape H,W,3]

nvidia-pytriton starts a real tritonserver binary; the model is a Python-backend model whose
function runs the bundle's ONNX with ONNX Runtime. `--frame-shape` declares a different input
shape, to serve a model that does not match the bundle.
"""

import os
import sys
import sysconfig

import numpy as np
import onnxruntime
from pytriton.decorators import batch
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

# The Python-backend stub loads libpython dynamically: point it at this interpreter's own, or a
# system libpython of another patch level gets mixed with this interpreter's standard library.
os.environ["LD_LIBRARY_PATH"] = ":".join(
    filter(None, [sysconfig.get_config_var("LIBDIR"), os.environ.get("LD_LIBRARY_PATH")])
)

model_path, name, grpc_port, http_port, metrics_port = sys.argv[1:6]
session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
graph_input, graph_output = session.get_inputs()[0], session.get_outputs()[0]
frame_shape = (
    tuple(int(v) for v in sys.argv[sys.argv.index("--frame-shape") + 1].split(","))
    if "--frame-shape" in sys.argv
    else tuple(graph_input.shape[1:])
)
output_shape = tuple(graph_output.shape[1:])


@batch
def infer(**inputs):
    frames = inputs[graph_input.name]
    return {
        graph_output.name: np.concatenate(
            [session.run(None, {graph_input.name: frames[i : i + 1]})[0] for i in range(len(frames))]
        )
    }


config = TritonConfig(grpc_port=int(grpc_port), http_port=int(http_port), metrics_port=int(metrics_port))
with Triton(config=config) as triton:
    triton.bind(
        model_name=name,
        infer_func=infer,
        inputs=[Tensor(name=graph_input.name, dtype=np.uint8, shape=frame_shape)],
        outputs=[Tensor(name=graph_output.name, dtype=np.uint8, shape=output_shape)],
        config=ModelConfig(max_batch_size=4),
    )
    print("serving", flush=True)
    triton.serve()
