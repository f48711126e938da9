"""ONNX Runtime execution for the local CPU Triton: dtype mapping, batch merge and split.

This module holds the real logic of the generic Python-backend model
(``python_model/model.py``), so it can be unit-tested without Triton. It is copied next to
that ``model.py`` into every rendered version folder and imported there by file path, inside
the Triton execution environment (``.venv-triton``: numpy<2). It must therefore depend on
nothing but the standard library, numpy (1.x and 2.x) and onnxruntime; in particular it
does not import ``wasteml_server``. Bad requests are reported as :class:`RequestError`,
which the Triton model turns into a per-request ``INVALID_ARG`` error.

Batching follows Triton's Python-backend contract
(https://github.com/triton-inference-server/python_backend#execute): ``execute`` receives a
list of requests that the dynamic batcher collected; each carries its own batch (first axis
when ``max_batch_size > 0``). Requests whose non-batch shapes are equal are concatenated
along axis 0, run once, and the outputs split back at the same offsets; every request gets
its own result or its own error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Triton model-config data types (``DataType`` enum names in model_config.proto) to numpy.
#: ``TYPE_BF16`` has no numpy dtype and is not supported here.
TRITON_TO_NUMPY: dict[str, np.dtype] = {
    "TYPE_BOOL": np.dtype(np.bool_),
    "TYPE_UINT8": np.dtype(np.uint8),
    "TYPE_UINT16": np.dtype(np.uint16),
    "TYPE_UINT32": np.dtype(np.uint32),
    "TYPE_UINT64": np.dtype(np.uint64),
    "TYPE_INT8": np.dtype(np.int8),
    "TYPE_INT16": np.dtype(np.int16),
    "TYPE_INT32": np.dtype(np.int32),
    "TYPE_INT64": np.dtype(np.int64),
    "TYPE_FP16": np.dtype(np.float16),
    "TYPE_FP32": np.dtype(np.float32),
    "TYPE_FP64": np.dtype(np.float64),
    "TYPE_STRING": np.dtype(np.object_),
}


def triton_dtype_to_numpy(data_type: str) -> np.dtype:
    """Numpy dtype of a Triton data type.

    Args:
        data_type: a model-config name such as ``"TYPE_FP32"`` or the KServe v2 tensor
            datatype name such as ``"FP32"`` (``"BYTES"`` maps to object, as in tritonclient).

    Returns:
        The numpy dtype.

    Raises:
        ValueError: unknown or unsupported type (e.g. ``TYPE_BF16``).
    """
    key = data_type if data_type.startswith("TYPE_") else f"TYPE_{data_type}"
    if key == "TYPE_BYTES":
        key = "TYPE_STRING"
    try:
        return TRITON_TO_NUMPY[key]
    except KeyError:
        raise ValueError(f"unsupported Triton data type {data_type!r}") from None


class RequestError(Exception):
    """One request cannot be served; the other requests of the batch are unaffected.

    Args:
        field: the request part at fault, e.g. ``"inputs.input_ids"`` (empty when unknown).
        description: what is wrong, in words a caller can act on.
        invalid_argument: True when the request itself is bad (Triton ``INVALID_ARG``);
            False for a failure of the model (``INTERNAL``).
    """

    def __init__(self, field: str, description: str, *, invalid_argument: bool = True) -> None:
        super().__init__(f"{field}: {description}" if field else description)
        self.field = field
        self.description = description
        self.invalid_argument = invalid_argument


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model config.

    Attributes:
        name: tensor name, as in the ONNX graph.
        dtype: numpy dtype.
        dims: shape without the batch axis when the model batches; ``-1`` is a free axis.
        optional: an input that requests may leave out (model-config ``optional``).
    """

    name: str
    dtype: np.dtype
    dims: tuple[int, ...]
    optional: bool = False

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> TensorSpec:
        """Spec from one ``input``/``output`` entry of Triton's model-config JSON.

        Raises:
            ValueError: unsupported data type or a non-integer dim.
        """
        return cls(
            name=str(entry["name"]),
            dtype=triton_dtype_to_numpy(str(entry["data_type"])),
            dims=tuple(int(d) for d in entry.get("dims", ())),
            optional=bool(entry.get("optional", False)),
        )


@dataclass(frozen=True)
class ModelSignature:
    """Inputs, outputs and batching of one model, as Triton's model config states them.

    Attributes:
        inputs: input specs in config order.
        outputs: output specs in config order.
        max_batch_size: 0 when the model does not batch (then dims include every axis),
            else the largest first-axis size one execution may receive.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int

    @classmethod
    def from_model_config(cls, config: Mapping[str, Any]) -> ModelSignature:
        """Signature from the model-config JSON that Triton hands to ``initialize``
        (``json.loads(args["model_config"])``).

        Raises:
            ValueError: no inputs or outputs, or an unsupported data type.
        """
        inputs = tuple(TensorSpec.from_config(e) for e in config.get("input", ()))
        outputs = tuple(TensorSpec.from_config(e) for e in config.get("output", ()))
        if not inputs or not outputs:
            raise ValueError("model config must declare at least one input and one output")
        return cls(inputs, outputs, int(config.get("max_batch_size", 0)))

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of all outputs in config order."""
        return tuple(o.name for o in self.outputs)


def _dims_match(shape: tuple[int, ...], dims: tuple[int, ...]) -> bool:
    return len(shape) == len(dims) and all(
        d == -1 or d == s for s, d in zip(shape, dims, strict=True)
    )


def validate_request(signature: ModelSignature, inputs: Mapping[str, np.ndarray]) -> int:
    """Check one request's tensors against the signature.

    Args:
        signature: the model's signature.
        inputs: tensor name -> array. With batching, every array's first axis is the batch.

    Returns:
        The request's batch size (1 for a model without batching).

    Raises:
        RequestError: unknown or missing input, wrong dtype, wrong shape, batch sizes that
            differ between inputs, or a batch larger than ``max_batch_size``.
    """
    known = {spec.name for spec in signature.inputs}
    for name in inputs:
        if name not in known:
            raise RequestError(f"inputs.{name}", f"unknown input; the model takes {sorted(known)}")
    batch: int | None = None
    for spec in signature.inputs:
        array = inputs.get(spec.name)
        field = f"inputs.{spec.name}"
        if array is None:
            if spec.optional:
                continue
            raise RequestError(field, "required input is missing")
        if array.dtype != spec.dtype and not (
            spec.dtype == np.object_ and array.dtype.kind in "OSU"
        ):
            raise RequestError(field, f"dtype {array.dtype} given, {spec.dtype} expected")
        shape = tuple(int(s) for s in array.shape)
        if signature.max_batch_size > 0:
            if len(shape) < 1:
                raise RequestError(field, "a batching model needs a batch axis first")
            if shape[0] < 1 or shape[0] > signature.max_batch_size:
                raise RequestError(
                    field, f"batch size {shape[0]} outside 1..{signature.max_batch_size}"
                )
            if batch is not None and shape[0] != batch:
                raise RequestError(
                    field, f"batch size {shape[0]} differs from the other inputs' {batch}"
                )
            batch = shape[0]
            shape = shape[1:]
        if not _dims_match(shape, spec.dims):
            raise RequestError(field, f"shape {list(shape)} does not match dims {list(spec.dims)}")
    return batch if batch is not None else 1


#: ``run(feed, output_names) -> arrays`` in ``output_names`` order; ONNX Runtime's signature.
RunFn = Callable[[dict[str, np.ndarray], list[str]], Sequence[np.ndarray]]

#: One request's outcome: output name -> array, or the request's own error.
RequestResult = dict[str, np.ndarray] | RequestError


def _error_from_exception(error: Exception) -> RequestError:
    """ONNX Runtime raises ``InvalidArgument`` (and friends) for bad values, e.g. an index
    out of range in a Gather; everything else is a model failure."""
    name = type(error).__name__
    invalid = name in {"InvalidArgument", "InvalidGraph", "NotImplemented"} or isinstance(
        error, ValueError
    )
    return RequestError("", f"{name}: {error}", invalid_argument=invalid)


def _run_one(
    run: RunFn, feed: dict[str, np.ndarray], names: list[str], expect_batch: int | None
) -> dict[str, np.ndarray]:
    arrays = run(feed, names)
    out = {}
    for name, array in zip(names, arrays, strict=True):
        array = np.asarray(array)
        if expect_batch is not None and (array.ndim == 0 or array.shape[0] != expect_batch):
            raise RequestError(
                f"outputs.{name}",
                f"model returned first axis {array.shape[:1]} for a batch of {expect_batch}",
                invalid_argument=False,
            )
        out[name] = array
    return out


def run_requests(
    signature: ModelSignature,
    run: RunFn,
    requests: Sequence[Mapping[str, np.ndarray]],
    requested_outputs: Sequence[Sequence[str]] | None = None,
) -> list[RequestResult]:
    """Serve a list of requests with as few model runs as possible.

    Valid requests whose non-batch input shapes are equal are concatenated along axis 0
    (chunks of at most ``max_batch_size``), run once, and the outputs split back at the same
    offsets. When a merged run fails, its requests are re-run one by one so that only the
    faulty request gets the error. A model with ``max_batch_size == 0`` runs each request
    alone.

    Args:
        signature: the model's signature.
        run: executes one feed and returns the named outputs, e.g.
            ``onnxruntime.InferenceSession.run``.
        requests: per request, input name -> array (see :func:`validate_request`).
        requested_outputs: per request, the outputs it asked for; empty or None means all.
            Outputs not in the signature make that request fail.

    Returns:
        One entry per request, in order: a dict output name -> array (the request's rows
        only), or the :class:`RequestError` for that request.
    """
    results: list[RequestResult | None] = [None] * len(requests)
    wanted: list[list[str]] = []
    for i in range(len(requests)):
        names = list(requested_outputs[i]) if requested_outputs and requested_outputs[i] else []
        unknown = [n for n in names if n not in signature.output_names]
        if unknown:
            results[i] = RequestError(f"outputs.{unknown[0]}", "unknown output")
        wanted.append(names or list(signature.output_names))

    batch_sizes: list[int] = [0] * len(requests)
    groups: dict[tuple, list[int]] = {}
    for i, feed in enumerate(requests):
        if results[i] is not None:
            continue
        try:
            batch_sizes[i] = validate_request(signature, feed)
        except RequestError as error:
            results[i] = error
            continue
        if signature.max_batch_size > 0:
            key = tuple(
                (name, feed[name].dtype.str, tuple(feed[name].shape[1:])) for name in sorted(feed)
            )
            groups.setdefault(key, []).append(i)
        else:
            groups[("single", i)] = [i]

    for members in groups.values():
        for chunk in _chunks(members, batch_sizes, signature.max_batch_size):
            names = sorted({n for i in chunk for n in wanted[i]}, key=signature.output_names.index)
            try:
                if len(chunk) == 1:
                    i = chunk[0]
                    expect = batch_sizes[i] if signature.max_batch_size > 0 else None
                    outputs = _run_one(run, dict(requests[i]), names, expect)
                    results[i] = {n: outputs[n] for n in wanted[i]}
                    continue
                feed = {
                    name: np.concatenate([requests[i][name] for i in chunk], axis=0)
                    for name in requests[chunk[0]]
                }
                outputs = _run_one(run, feed, names, sum(batch_sizes[i] for i in chunk))
            except RequestError as error:
                if len(chunk) == 1:
                    results[chunk[0]] = error
                    continue
                outputs = None
            except Exception as error:  # noqa: BLE001 - a model failure becomes per-request errors
                if len(chunk) == 1:
                    results[chunk[0]] = _error_from_exception(error)
                    continue
                logger.warning(
                    "merged run of %d requests failed (%s); re-running one by one",
                    len(chunk),
                    error,
                )
                outputs = None
            if outputs is None:
                for i in chunk:
                    results[i] = run_requests(signature, run, [requests[i]], [wanted[i]])[0]
                continue
            offset = 0
            for i in chunk:
                rows = slice(offset, offset + batch_sizes[i])
                results[i] = {n: outputs[n][rows] for n in wanted[i]}
                offset += batch_sizes[i]
    return [
        r if r is not None else RequestError("", "not served", invalid_argument=False)
        for r in results
    ]


def _chunks(members: list[int], batch_sizes: list[int], max_batch_size: int) -> list[list[int]]:
    """Split request indices into consecutive chunks whose batch sizes sum to at most
    ``max_batch_size`` (one request per chunk when the model does not batch)."""
    if max_batch_size <= 0:
        return [[i] for i in members]
    chunks: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i in members:
        if current and total + batch_sizes[i] > max_batch_size:
            chunks.append(current)
            current, total = [], 0
        current.append(i)
        total += batch_sizes[i]
    if current:
        chunks.append(current)
    return chunks


def make_session(
    model_path: str | Path, *, intra_op_threads: int = 1, allow_spinning: bool = False
) -> Any:
    """Create a CPU ONNX Runtime session for one Triton model instance.

    Args:
        model_path: the ``model.onnx`` file.
        intra_op_threads: ONNX Runtime intra-op threads; 1 because Triton runs several
            instances side by side (``settings.triton_instance_count``).
        allow_spinning: ``session.intra_op.allow_spinning``; off by default because spinning
            threads cost ~2.2x under CPU contention on the 2-core dev machine (issue 3).

    Returns:
        An ``onnxruntime.InferenceSession`` on ``CPUExecutionProvider``.

    Raises:
        ValueError: ``intra_op_threads < 1``.
        onnxruntime errors: the file is missing or not a valid model.
    """
    import onnxruntime as ort

    if intra_op_threads < 1:
        raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
    )
    options.add_session_config_entry(
        "session.inter_op.allow_spinning", "1" if allow_spinning else "0"
    )
    return ort.InferenceSession(
        str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
    )


#: ONNX tensor element types as ONNX Runtime reports them -> numpy dtype.
_ORT_TYPES: dict[str, np.dtype] = {
    f"tensor({name})": dtype
    for name, dtype in {
        "bool": np.dtype(np.bool_),
        "uint8": np.dtype(np.uint8),
        "uint16": np.dtype(np.uint16),
        "uint32": np.dtype(np.uint32),
        "uint64": np.dtype(np.uint64),
        "int8": np.dtype(np.int8),
        "int16": np.dtype(np.int16),
        "int32": np.dtype(np.int32),
        "int64": np.dtype(np.int64),
        "float16": np.dtype(np.float16),
        "float": np.dtype(np.float32),
        "double": np.dtype(np.float64),
        "string": np.dtype(np.object_),
    }.items()
}


def check_session(signature: ModelSignature, session: Any) -> None:
    """Check that the ONNX graph has every configured input and output with its dtype.

    Raises:
        ValueError: a configured tensor is missing from the graph or has another dtype;
            the graph has a required input the config lacks.
    """
    graph_inputs = {i.name: i for i in session.get_inputs()}
    graph_outputs = {o.name: o for o in session.get_outputs()}
    for kind, specs, graph in (
        ("input", signature.inputs, graph_inputs),
        ("output", signature.outputs, graph_outputs),
    ):
        for spec in specs:
            node = graph.get(spec.name)
            if node is None:
                raise ValueError(
                    f"config {kind} {spec.name!r} is not in the ONNX graph ({sorted(graph)})"
                )
            dtype = _ORT_TYPES.get(node.type)
            if dtype != spec.dtype:
                raise ValueError(
                    f"config {kind} {spec.name!r} is {spec.dtype}, the graph has {node.type}"
                )
    missing = set(graph_inputs) - {s.name for s in signature.inputs}
    if missing:
        raise ValueError(f"ONNX graph inputs {sorted(missing)} are not in the config")


class OrtRunner:
    """One ONNX Runtime session plus the batching logic, for one Triton model instance.

    Args:
        model_path: the ``model.onnx`` file.
        signature: inputs/outputs/max_batch_size from the Triton model config.
        intra_op_threads: see :func:`make_session`.
        allow_spinning: see :func:`make_session`.

    Raises:
        ValueError: the graph does not match the config (see :func:`check_session`).
    """

    def __init__(
        self,
        model_path: str | Path,
        signature: ModelSignature,
        *,
        intra_op_threads: int = 1,
        allow_spinning: bool = False,
    ) -> None:
        self.signature = signature
        self.session = make_session(
            model_path, intra_op_threads=intra_op_threads, allow_spinning=allow_spinning
        )
        check_session(signature, self.session)

    def _run(self, feed: dict[str, np.ndarray], names: list[str]) -> Sequence[np.ndarray]:
        return self.session.run(names, feed)

    def infer(
        self,
        requests: Sequence[Mapping[str, np.ndarray]],
        requested_outputs: Sequence[Sequence[str]] | None = None,
    ) -> list[RequestResult]:
        """Serve a list of requests (see :func:`run_requests`)."""
        return run_requests(self.signature, self._run, requests, requested_outputs)
