"""Triton model configurations (``config.pbtxt``) and the signatures they state.

A configuration is parsed with Triton's own schema (``tritonclient.grpc.model_config_pb2``, the
``ModelConfig`` message of Triton's model_config.proto), never by hand, and read for the facts
other code needs: input and output tensor names, dtypes and dims, and ``max_batch_size``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

#: File name of a model's configuration in its repository folder.
CONFIG_FILE = "config.pbtxt"


class ModelConfigError(ValueError):
    """A ``config.pbtxt`` that is not a valid Triton ``ModelConfig``, or lacks a tensor."""


def load_model_config(path: Path) -> model_config_pb2.ModelConfig:
    """Parse a ``config.pbtxt`` with Triton's ``ModelConfig`` schema.

    Raises:
        ModelConfigError: the file is not a valid ``ModelConfig`` text proto.
        OSError: the file cannot be read.
    """
    config = model_config_pb2.ModelConfig()
    try:
        text_format.Parse(Path(path).read_text(encoding="utf-8"), config)
    except text_format.ParseError as error:
        raise ModelConfigError(f"{path}: not a Triton ModelConfig: {error}") from error
    return config


@dataclass(frozen=True)
class TensorSpec:
    """One input or output as the configuration states it.

    Attributes:
        name: tensor name, e.g. ``"input_ids"``.
        data_type: Triton type name, e.g. ``"TYPE_INT64"``.
        dims: dims without the batch axis (-1 = variable).
    """

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class ModelSignature:
    """What a model takes and returns, from its ``config.pbtxt``.

    Attributes:
        name: the model name.
        max_batch_size: largest batch one request may carry (0 = no batch axis).
        inputs: the inputs, in configuration order.
        outputs: the outputs, in configuration order.
    """

    name: str
    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def from_config(cls, config: model_config_pb2.ModelConfig) -> ModelSignature:
        """The signature a parsed configuration states."""
        def specs(tensors: Iterable[model_config_pb2.ModelInput] | Iterable[model_config_pb2.ModelOutput]
                  ) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(t.name, model_config_pb2.DataType.Name(t.data_type), tuple(t.dims))
                         for t in tensors)

        return cls(config.name, int(config.max_batch_size), specs(config.input), specs(config.output))

    def output(self, index: int = 0) -> TensorSpec:
        """The ``index``-th output.

        Raises:
            ModelConfigError: the configuration has no such output.
        """
        if index >= len(self.outputs):
            raise ModelConfigError(f"{self.name}: the configuration states {len(self.outputs)} outputs")
        return self.outputs[index]

    def input(self, index: int = 0) -> TensorSpec:
        """The ``index``-th input.

        Raises:
            ModelConfigError: the configuration has no such input.
        """
        if index >= len(self.inputs):
            raise ModelConfigError(f"{self.name}: the configuration states {len(self.inputs)} inputs")
        return self.inputs[index]


def load_signature(model_repository: Path, name: str) -> ModelSignature:
    """The signature of ``model_repository/<name>/config.pbtxt``.

    Raises:
        ModelConfigError: not a valid configuration.
        OSError: the file cannot be read.
    """
    return ModelSignature.from_config(load_model_config(Path(model_repository) / name / CONFIG_FILE))


@dataclass(frozen=True)
class EncoderSignature:
    """The text encoder's tensors: ``input_ids`` and ``attention_mask`` in, one embedding out.

    Attributes:
        input_ids: name of the token-id input (int64 ``[batch, seq]``).
        attention_mask: name of the mask input (int64 ``[batch, seq]``).
        embedding: name of the output (float32 ``[batch, dimension]``).
        dimension: embedding dimension (384 for all-MiniLM-L6-v2).
        max_batch_size: rows per request.
    """

    input_ids: str
    attention_mask: str
    embedding: str
    dimension: int
    max_batch_size: int

    @classmethod
    def from_signature(cls, sig: ModelSignature) -> EncoderSignature:
        """Read from a model signature (inputs in the order ids, mask).

        Raises:
            ModelConfigError: not two inputs and one fixed-size output.
        """
        out = sig.output(0)
        if len(sig.inputs) != 2 or len(out.dims) != 1 or out.dims[0] <= 0:
            raise ModelConfigError(f"{sig.name}: expected inputs (ids, mask) and one output [dimension]")
        return cls(sig.input(0).name, sig.input(1).name, out.name, out.dims[0], max(1, sig.max_batch_size))

    @classmethod
    def load(cls, model_repository: Path, name: str) -> EncoderSignature:
        """The encoder signature of ``model_repository/<name>/config.pbtxt``."""
        return cls.from_signature(load_signature(model_repository, name))


@dataclass(frozen=True)
class TabularSignature:
    """A forecasting model's tensors: one float32 feature matrix in, one value per row out.

    Attributes:
        features: input name (float32 ``[batch, n_features]``).
        prediction: output name (float32 ``[batch, 1]``).
        n_features: feature columns.
        max_batch_size: rows per request.
    """

    features: str
    prediction: str
    n_features: int
    max_batch_size: int

    @classmethod
    def load(cls, model_repository: Path, name: str) -> TabularSignature:
        """The signature of ``model_repository/<name>/config.pbtxt``.

        Raises:
            ModelConfigError: not one input ``[n_features]`` and one output.
        """
        sig = load_signature(model_repository, name)
        x, y = sig.input(0), sig.output(0)
        if len(x.dims) != 1:
            raise ModelConfigError(f"{name}: expected one input [n_features]")
        return cls(x.name, y.name, x.dims[0], max(1, sig.max_batch_size))
