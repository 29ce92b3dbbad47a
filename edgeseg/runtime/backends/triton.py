"""Triton backend: `--backend triton://HOST:PORT/MODEL`. Capture and overlay stay local; inference goes to
the server over gRPC (tritonclient, imported when the backend opens). The request carries uint8
frames when the graph fuses preprocessing, and asks for the outputs the head reads: the first, or every one by name
(a detector's five), each given back in the shape the bundle's graph answers it. A server that goes away mid-stream
is retried with exponential backoff, like a live source."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError, require
from edgeseg.runtime.backends.base import Backend, TensorSpec


@dataclass(frozen=True)
class TritonOptions:
    """How a remote Triton backend is waited for: the same patience as a live stream's."""

    timeout: float = 10.0  # seconds per request
    retries: int = 8  # attempts after a failed request
    backoff_cap: float = 8.0  # seconds: the longest wait between attempts (they double from 0.5 s)


NUMPY_OF = {
    "UINT8": np.uint8,
    "FP32": np.float32,
    "FP16": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT8": np.int8,
}
TRITON_OF = {np.dtype(v): k for k, v in NUMPY_OF.items()}


class TritonBackend(Backend):
    name = "triton"

    def __init__(self, url: str, bundle: Bundle, options: TritonOptions):
        super().__init__()
        parts = urlsplit(url)
        self.model = parts.path.strip("/")
        if not parts.hostname or not parts.port or not self.model:
            raise EdgesegError(f"'{url}': use triton://HOST:PORT/MODEL (the gRPC port, 8001 by default)")
        self.address = f"{parts.hostname}:{parts.port}"
        self.url, self.bundle = url, bundle
        self.timeout, self.retries, self.backoff_cap = options.timeout, options.retries, options.backoff_cap
        self.client: Any = None
        self.scalars: set[str] = set()

    def _open(self) -> None:
        grpc = require("tritonclient.grpc", "triton")
        from tritonclient.utils import InferenceServerException

        self.grpc, self.server_error = grpc, InferenceServerException
        self.client = grpc.InferenceServerClient(self.address)
        try:
            self.client.is_server_live(client_timeout=self.timeout)
        except InferenceServerException as exc:
            raise EdgesegError(
                f"Triton at {self.address} is unreachable ({first_line(exc)}); is tritonserver running with its gRPC "
                "port there?"
            ) from None
        try:
            metadata = self.client.get_model_metadata(self.model, client_timeout=self.timeout)
        except InferenceServerException:
            raise EdgesegError(
                f"Triton at {self.address} has no model '{self.model}' (it serves: {self._served()})"
            ) from None
        self.inputs = [
            TensorSpec(
                t.name, tuple(d if d >= 0 else None for d in t.shape), np.dtype(NUMPY_OF.get(t.datatype, np.float32))
            )
            for t in metadata.inputs
        ]
        self.outputs = [
            TensorSpec(
                t.name, tuple(d if d >= 0 else None for d in t.shape), np.dtype(NUMPY_OF.get(t.datatype, np.float32))
            )
            for t in metadata.outputs
        ]
        self._check_contract(metadata)
        self.scalars = self._scalar_outputs()

    def _scalar_outputs(self) -> set[str]:
        """The outputs that are scalars in the bundle's graph. Triton serves no scalar from a model it does not batch
        (max_batch_size 0), so `edgeseg deploy` serves each as [1] (a detector's count): one element of such a
        model is given back as the scalar the head reads, as the graph itself answers it."""
        try:
            config = self.client.get_model_config(self.model, client_timeout=self.timeout).config
        except self.server_error:
            return set()  # a server that does not share its config: the outputs as served
        if config.max_batch_size > 0:
            return set()
        return {output.name for output in self.outputs if output.shape == (1,)}

    def _served(self) -> str:
        """The names of the ready models, where the server lets us list them."""
        try:
            index = self.client.get_model_repository_index(client_timeout=self.timeout)
        except self.server_error:
            return "a list this server does not share"
        return ", ".join(m.name for m in index.models if m.state in ("", "READY")) or "nothing"

    def _check_contract(self, metadata: Any) -> None:
        """The server's model must take what the bundle sends: same name, type and per-frame shape."""
        contract = self.bundle.input
        height, width = contract.size
        frame = [height, width, 3] if contract.layout == "NHWC" else [3, height, width]
        expected = f"'{contract.name}' {TRITON_OF[np.dtype(contract.dtype)]} [batch, {', '.join(map(str, frame))}]"
        served = metadata.inputs[0] if len(metadata.inputs) == 1 else None
        ok = (
            served is not None
            and served.name == contract.name
            and served.datatype == TRITON_OF[np.dtype(contract.dtype)]
            and list(served.shape)[1:] == frame
        )
        if not ok:
            have = ", ".join(f"'{t.name}' {t.datatype} {list(t.shape)}" for t in metadata.inputs)
            raise EdgesegError(
                f"Triton model '{self.model}' takes {have}, but this bundle sends {expected}; deploy the same bundle "
                "with: edgeseg deploy BUNDLE --target triton"
            )

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        first = self.outputs[0].name
        return self._request(batch, [first])[first]

    def _infer_outputs(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every output the server's model has, by name: a detector's head reads all five."""
        return self._request(batch, [output.name for output in self.outputs])

    def _request(self, batch: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The named outputs for one batch; a server that stops answering is retried with backoff."""
        request = self.grpc.InferInput(self.inputs[0].name, list(batch.shape), TRITON_OF[batch.dtype])
        request.set_data_from_numpy(batch)
        wanted = [self.grpc.InferRequestedOutput(name) for name in names]
        for attempt in range(self.retries + 1):
            try:
                result = self.client.infer(self.model, [request], outputs=wanted, client_timeout=self.timeout)
                if attempt:
                    print(f"edgeseg: Triton at {self.address} answers again", file=sys.stderr, flush=True)
                answers = {name: result.as_numpy(name) for name in names}
                return {name: a.reshape(()) if name in self.scalars else a for name, a in answers.items()}
            except self.server_error as exc:
                if attempt == self.retries:
                    raise EdgesegError(
                        f"Triton at {self.address} stopped answering ({first_line(exc)}) and did not come back after "
                        f"{self.retries} retries"
                    ) from None
                delay = min(self.backoff_cap, 0.5 * 2**attempt)
                print(
                    f"edgeseg: Triton at {self.address} did not answer ({first_line(exc)}); retrying in {delay:g} s",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def describe(self) -> str:
        return f"triton {self.address} model {self.model}"


def first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
