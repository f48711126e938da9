"""Generic Triton Python-backend model that runs one ONNX file with ONNX Runtime on CPU.

The repository renderer (``wasteml_server.adapters.triton.repository``) copies this file and
``ort_runner.py`` into every version folder of the local CPU repository, next to the
``model.onnx``. It runs inside the Triton stub process, in the execution environment
``.venv-triton`` (numpy<2, onnxruntime), so it imports only ``ort_runner`` by file path and
``triton_python_backend_utils``. All logic lives in ``ort_runner`` (unit-tested); this file
only converts between Triton's request/response objects and numpy.

Model-config parameters read here (string values):
    ORT_INTRA_OP_THREADS: ONNX Runtime intra-op threads per instance (default "1").
    ORT_ALLOW_SPINNING: "1" to let ONNX Runtime threads spin (default "0").
"""

import importlib.util
import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils


def _load_ort_runner():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort_runner.py")
    spec = importlib.util.spec_from_file_location("wasteml_ort_runner", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


ort_runner = _load_ort_runner()


def _parameter(config, key, default):
    value = config.get("parameters", {}).get(key, {}).get("string_value", "")
    return value if value else default


class TritonPythonModel:
    """One instance: an ONNX Runtime session on the version's ``model.onnx``."""

    def initialize(self, args):
        """Parse the model config once and open the session (raises if the graph does not
        match the config, which fails the load with that message)."""
        config = json.loads(args["model_config"])
        self.signature = ort_runner.ModelSignature.from_model_config(config)
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.runner = ort_runner.OrtRunner(
            os.path.join(version_dir, "model.onnx"),
            self.signature,
            intra_op_threads=int(_parameter(config, "ORT_INTRA_OP_THREADS", "1")),
            allow_spinning=_parameter(config, "ORT_ALLOW_SPINNING", "0") == "1",
        )
        self.logger = pb_utils.Logger

    def execute(self, requests):
        """Serve the batch the dynamic batcher collected: one response per request, a
        per-request error instead of failing the whole batch."""
        try:
            feeds = []
            for request in requests:
                feed = {}
                for spec in self.signature.inputs:
                    tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
                    if tensor is not None:
                        feed[spec.name] = tensor.as_numpy()
                feeds.append(feed)
            wanted = [list(request.requested_output_names()) for request in requests]
            results = self.runner.infer(feeds, wanted)
        except Exception as error:  # a bug here must not take the stub down
            self.logger.log_error(f"execute failed: {error!r}")
            message = pb_utils.TritonError(f"model failure: {error}", pb_utils.TritonError.INTERNAL)
            return [pb_utils.InferenceResponse(error=message) for _ in requests]
        responses = []
        for result in results:
            if isinstance(result, ort_runner.RequestError):
                code = (
                    pb_utils.TritonError.INVALID_ARG
                    if result.invalid_argument
                    else pb_utils.TritonError.INTERNAL
                )
                responses.append(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(str(result), code))
                )
            else:
                tensors = [pb_utils.Tensor(n, np.ascontiguousarray(a)) for n, a in result.items()]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self):
        """Drop the session."""
        self.runner = None
