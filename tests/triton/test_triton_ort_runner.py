"""Unit tests of ort_runner: dtype mapping, batch merge/split and per-request errors, with a
real ONNX Runtime session (no Triton)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from triton_testutils import affine_weights, write_affine_onnx, write_gather_onnx

from wasteml_server.adapters.triton import ort_runner
from wasteml_server.adapters.triton.ort_runner import (
    ModelSignature,
    OrtRunner,
    RequestError,
    TensorSpec,
    run_requests,
    triton_dtype_to_numpy,
)

AFFINE = ModelSignature(
    inputs=(TensorSpec("x", np.dtype(np.float32), (4,)),),
    outputs=(
        TensorSpec("y", np.dtype(np.float32), (3,)),
        TensorSpec("z", np.dtype(np.float32), (3,)),
    ),
    max_batch_size=8,
)
GATHER = ModelSignature(
    inputs=(TensorSpec("ids", np.dtype(np.int64), (-1,)),),
    outputs=(TensorSpec("out", np.dtype(np.float32), (-1, 3)),),
    max_batch_size=8,
)


class CountingRun:
    """A real ONNX Runtime session whose runs are recorded (feed batch sizes)."""

    def __init__(self, path: Path) -> None:
        self.session = ort_runner.make_session(path)
        self.batches: list[int] = []

    def __call__(self, feed: dict[str, np.ndarray], names: list[str]):
        self.batches.append(next(iter(feed.values())).shape[0])
        return self.session.run(names, feed)


@pytest.fixture(scope="module")
def affine_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_affine_onnx(tmp_path_factory.mktemp("affine") / "model.onnx", seed=7)


@pytest.fixture(scope="module")
def gather_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gather_onnx(tmp_path_factory.mktemp("gather") / "model.onnx")


def test_dtype_mapping_covers_triton_types() -> None:
    """Model-config and KServe v2 type names map to the numpy dtypes; BF16 is refused."""
    assert triton_dtype_to_numpy("TYPE_FP32") == np.float32
    assert triton_dtype_to_numpy("FP16") == np.float16
    assert triton_dtype_to_numpy("TYPE_INT64") == np.int64
    assert triton_dtype_to_numpy("TYPE_BOOL") == np.bool_
    assert triton_dtype_to_numpy("BYTES") == np.object_
    assert triton_dtype_to_numpy("TYPE_STRING") == np.object_
    with pytest.raises(ValueError, match="BF16"):
        triton_dtype_to_numpy("TYPE_BF16")


def test_signature_from_triton_model_config_json() -> None:
    """The signature is read from the JSON form Triton hands to initialize()."""
    config = {
        "max_batch_size": 16,
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": ["4"]}],
        "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": ["3"]}],
    }
    sig = ModelSignature.from_model_config(config)
    assert sig.max_batch_size == 16
    assert sig.inputs == (TensorSpec("x", np.dtype(np.float32), (4,)),)
    assert sig.output_names == ("y",)


def test_equal_shapes_merge_into_one_run(affine_path: Path) -> None:
    """Requests of batch 1, 2 and 3 run once as batch 6; each gets exactly its own rows."""
    run = CountingRun(affine_path)
    rng = np.random.default_rng(0)
    requests = [{"x": rng.normal(size=(n, 4)).astype(np.float32)} for n in (1, 2, 3)]
    results = run_requests(AFFINE, run, requests)
    assert run.batches == [6]
    weight, bias = affine_weights(7)
    for request, result in zip(requests, results, strict=True):
        assert isinstance(result, dict)
        expected = request["x"] @ weight + bias
        np.testing.assert_allclose(result["y"], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result["z"], np.maximum(expected, 0), rtol=1e-5, atol=1e-6)


def test_merge_respects_max_batch_size(affine_path: Path) -> None:
    """Merged runs never exceed max_batch_size (8): batches 6, 6, 2 run as 6, then 6+2."""
    run = CountingRun(affine_path)
    requests = [{"x": np.ones((n, 4), np.float32)} for n in (6, 6, 2)]
    results = run_requests(AFFINE, run, requests)
    assert run.batches == [6, 8]
    assert [r["y"].shape[0] for r in results] == [6, 6, 2]


def test_unequal_shapes_run_per_shape_group(gather_path: Path) -> None:
    """Requests whose non-batch shapes differ are grouped by shape: lengths 3, 5, 3 -> 2 runs."""
    run = CountingRun(gather_path)
    requests = [
        {"ids": np.array([[1, 2, 3]], np.int64)},
        {"ids": np.array([[0, 1, 2, 3, 4]], np.int64)},
        {"ids": np.array([[9, 8, 7], [0, 0, 0]], np.int64)},
    ]
    results = run_requests(GATHER, run, requests)
    assert sorted(run.batches) == [1, 3]
    table = np.arange(30, dtype=np.float32).reshape(10, 3)
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["out"], table[request["ids"]])


def test_invalid_requests_get_their_own_errors(affine_path: Path) -> None:
    """Wrong dtype, wrong dims, missing input, too large a batch, unknown output: each such
    request gets its own RequestError naming the field; the valid ones are still served."""
    run = CountingRun(affine_path)
    good = {"x": np.ones((2, 4), np.float32)}
    requests = [
        good,
        {"x": np.ones((1, 4), np.float64)},
        {"x": np.ones((1, 5), np.float32)},
        {},
        {"x": np.ones((9, 4), np.float32)},
        {"x": np.ones((1, 4), np.float32), "w": np.ones((1, 4), np.float32)},
        good,
    ]
    outputs = [["y"], [], [], [], [], [], ["nope"]]
    results = run_requests(AFFINE, run, requests, outputs)
    assert isinstance(results[0], dict) and set(results[0]) == {"y"}
    fields = [r.field for r in results[1:] if isinstance(r, RequestError)]
    assert fields == ["inputs.x", "inputs.x", "inputs.x", "inputs.x", "inputs.w", "outputs.nope"]
    assert all(r.invalid_argument for r in results[1:])
    assert run.batches == [2]


def test_bad_value_in_merged_run_fails_only_its_request(gather_path: Path) -> None:
    """An out-of-range id makes ONNX Runtime fail the merged run; the batch is re-run request
    by request, so only the faulty request gets an INVALID_ARG error."""
    run = CountingRun(gather_path)
    requests = [
        {"ids": np.array([[1, 2]], np.int64)},
        {"ids": np.array([[99, 2]], np.int64)},
        {"ids": np.array([[3, 4]], np.int64)},
    ]
    results = run_requests(GATHER, run, requests)
    assert isinstance(results[0], dict) and isinstance(results[2], dict)
    assert isinstance(results[1], RequestError) and results[1].invalid_argument
    assert run.batches[0] == 3 and len(run.batches) == 4
    np.testing.assert_array_equal(results[2]["out"][0, 0], [9.0, 10.0, 11.0])


def test_model_without_batching_runs_each_request(gather_path: Path) -> None:
    """With max_batch_size 0 every request runs alone and dims cover every axis."""
    sig = ModelSignature(
        GATHER.inputs[:0] + (TensorSpec("ids", np.dtype(np.int64), (-1, -1)),),
        (TensorSpec("out", np.dtype(np.float32), (-1, -1, 3)),),
        0,
    )
    run = CountingRun(gather_path)
    results = run_requests(sig, run, [{"ids": np.array([[1]], np.int64)}] * 3)
    assert run.batches == [1, 1, 1]
    assert all(isinstance(r, dict) for r in results)


def test_runner_checks_graph_against_config(affine_path: Path) -> None:
    """OrtRunner refuses a config whose tensor names or dtypes differ from the ONNX graph."""
    wrong_dtype = ModelSignature((TensorSpec("x", np.dtype(np.float16), (4,)),), AFFINE.outputs, 8)
    with pytest.raises(ValueError, match="'x'"):
        OrtRunner(affine_path, wrong_dtype)
    wrong_name = ModelSignature(AFFINE.inputs, (TensorSpec("q", np.dtype(np.float32), (3,)),), 8)
    with pytest.raises(ValueError, match="'q'"):
        OrtRunner(affine_path, wrong_name)
    runner = OrtRunner(affine_path, AFFINE)
    [result] = runner.infer([{"x": np.zeros((1, 4), np.float32)}])
    np.testing.assert_allclose(result["y"][0], affine_weights(7)[1], rtol=1e-6)


def test_session_options_disable_spinning(affine_path: Path) -> None:
    """Sessions run on CPU with one intra-op thread and spinning off (issue 3 measurement)."""
    session = ort_runner.make_session(affine_path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert isinstance(session, ort.InferenceSession)
    with pytest.raises(ValueError, match="intra_op_threads"):
        ort_runner.make_session(affine_path, intra_op_threads=0)
