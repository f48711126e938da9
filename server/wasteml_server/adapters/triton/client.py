"""The server's one long-lived asyncio client to Triton (KServe v2 gRPC protocol).

Wraps ``tritonclient.grpc.aio.InferenceServerClient`` (one gRPC channel, reused by every
call) and turns its errors into the domain errors of ``wasteml_server.core.errors``:

========================================  ==========================================
Triton / gRPC status                      domain error
========================================  ==========================================
UNAVAILABLE, connection refused           ``UnavailableError("triton", ...)``
DEADLINE_EXCEEDED (client timeout)        ``DeadlineExceededError``
"has no available versions" (not loaded)  ``UnavailableError("triton", ...)``
NOT_FOUND, "unknown model", load of a      ``NotFoundError``
version that is not in the repository
a version string Triton cannot parse      ``InvalidArgumentError("model.version")`` (the
                                          caller's version; normally refused before, by
                                          ``ModelRef.parse_version``)
INVALID_ARGUMENT (shape, dtype, input)    ``InternalError`` (this server built the tensor)
INVALID_ARGUMENT on load                  ``FailedPreconditionError`` (the repository's config)
anything else                             ``UnavailableError("triton", ...)``
========================================  ==========================================

Every call carries a timeout (gRPC deadline), so nothing waits forever on a stuck server.
Triton's messages echo model names and versions; a domain error quotes at most
``TRITON_MESSAGE_CHARS`` of one, so an error's size never changes the code the caller sees.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from wasteml_server.core.common import MAX_MODEL_NAME_CHARS, MAX_MODEL_VERSION, is_model_name
from wasteml_server.core.deadlines import bounded_timeout
from wasteml_server.core.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    UnavailableError,
    WastemlError,
    shown,
)
from wasteml_server.core.inference import ModelVersionState

logger = logging.getLogger(__name__)

TRITON_MESSAGE_CHARS = 512
"""Most characters of a Triton error message quoted in a domain error."""


def _status(error: InferenceServerException) -> str:
    status = error.status() or ""
    return status.removeprefix("StatusCode.")


def map_triton_error(
    error: InferenceServerException,
    *,
    model: str = "",
    action: str = "call",
    version_field: str = "model.version",
) -> WastemlError:
    """The domain error for a tritonclient exception (table in the module docstring).

    Triton's INVALID_ARGUMENT is not the caller's fault, except for a version string Triton
    cannot parse (the caller's ``version_field``): the server built every tensor and chose
    every configuration, so inference gets ``InternalError`` and a refused load
    ``FailedPreconditionError`` (the model repository must be fixed). A caller's unknown model
    or version is ``NotFoundError`` — never ``UnavailableError``, which clients retry.

    Args:
        error: the exception raised by tritonclient.
        model: the model the call was about, for the message.
        action: what was attempted, for the message (e.g. ``"infer"``, ``"load"``).
        version_field: the request field that carried the version, for an unparseable one.
    """
    status = _status(error)
    message = (error.message() or str(error))[:TRITON_MESSAGE_CHARS]
    lowered = message.lower()
    shown_model = shown(model, MAX_MODEL_NAME_CHARS)
    what = f"{action} {model[:MAX_MODEL_NAME_CHARS]}".strip()
    if status == "DEADLINE_EXCEEDED":
        return DeadlineExceededError(f"triton {what}: deadline exceeded")
    if "failed to get model version from specified version string" in lowered:
        return InvalidArgumentError(version_field, f"not a version the model server accepts "
                                    f"(1..{MAX_MODEL_VERSION}): {message}")
    if "has no available versions" in lowered:  # known model, nothing loaded: retry after a load
        return UnavailableError("triton", f"model {shown_model} has no ready version: {message}")
    if (
        status == "NOT_FOUND"
        or "unknown model" in lowered
        or "failed to poll from model repository" in lowered
        or ("requested model" in lowered and "is not available" in lowered)
        or "at least one version must be available" in lowered  # load: no such version
    ):
        return NotFoundError(
            f"model {shown_model} not found in Triton: {message}" if model else message
        )
    if status == "INVALID_ARGUMENT" and action == "load":
        return FailedPreconditionError(f"triton refused the configuration of {shown_model}: {message}")
    if status == "INVALID_ARGUMENT":
        return InternalError(f"triton {what} rejected a request this server built: {message}")
    return UnavailableError("triton", f"{what}: {status or 'error'}: {message}")


def _known_name(model: str, action: str) -> None:
    """Refuse a name no model repository can hold (``core.common.is_model_name``) as
    ``NotFoundError`` without asking Triton: Triton would echo it, and a long one overflows the
    reply's metadata (RESOURCE_EXHAUSTED, which would read as an outage)."""
    if not is_model_name(model):
        raise NotFoundError(f"{action}: model {shown(model)} not found: not a model name "
                            f"(1..{MAX_MODEL_NAME_CHARS} of A-Z a-z 0-9 _ . -)")


class TritonClient:
    """One long-lived aio gRPC client to one Triton server.

    Create it inside the event loop that will use it (gRPC aio channels belong to a loop)
    and ``await close()`` when done, or use it as an async context manager.

    Args:
        url: ``host:port`` of Triton's gRPC endpoint.
        timeout_s: timeout of one call when the caller gives none, seconds
            (``settings.triton_timeout_s``).
        load_timeout_s: timeout of a model load, seconds (loads run warmup; e.g.
            ``settings.triton_startup_timeout_s``).
        max_message_bytes: largest gRPC message sent or received (``settings.max_message_bytes``).

    Raises:
        ValueError: a non-positive timeout or message size.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 30.0,
        load_timeout_s: float = 120.0,
        max_message_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        for field, value in (
            ("timeout_s", timeout_s),
            ("load_timeout_s", load_timeout_s),
            ("max_message_bytes", max_message_bytes),
        ):
            if value <= 0:
                raise ValueError(f"{field} must be > 0, got {value}")
        self.url = url
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self._client = InferenceServerClient(
            url,
            channel_args=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 0),
                ("grpc.http2.max_pings_without_data", 2),
            ],
        )

    @classmethod
    def from_settings(cls, settings: Any, url: str) -> TritonClient:
        """Client with the timeouts and message size of ``settings`` (a ``Settings``)."""
        return cls(
            url,
            timeout_s=settings.triton_timeout_s,
            load_timeout_s=settings.triton_startup_timeout_s,
            max_message_bytes=settings.max_message_bytes,
        )

    async def __aenter__(self) -> TritonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; further calls fail."""
        await self._client.close()

    def _timeout(self, timeout_s: float | None) -> float:
        """The call's timeout: ``timeout_s`` (or the default), never past the RPC's deadline.

        The deadline of the gRPC call being served (``wasteml_server.core.deadlines``) bounds every
        Triton call made on its behalf, so a client deadline propagates down to Triton.
        """
        timeout = bounded_timeout(self.timeout_s if timeout_s is None else timeout_s)
        if timeout <= 0:
            raise DeadlineExceededError("triton call: no time left before the deadline")
        return timeout

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        version: str = "",
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run one inference; see :meth:`infer_versioned` (this drops the served version)."""
        out, _ = await self.infer_versioned(model, inputs, outputs, version, timeout_s)
        return out

    async def infer_versioned(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str],
        version: str = "",
        timeout_s: float | None = None,
    ) -> tuple[dict[str, np.ndarray], str]:
        """Run one inference and say which model version served it.

        Args:
            model: model name.
            inputs: input name -> array; shapes include the batch axis for batching models.
                Numeric and bool dtypes, and object/bytes arrays for ``BYTES`` tensors.
            outputs: names of the outputs wanted.
            version: model version as a string; empty for Triton's choice (latest ready).
            timeout_s: seconds this call may take; None uses ``self.timeout_s``.

        Returns:
            ``(outputs, version)``: output name -> array as Triton returned them, and the
            version that served the request (from the KServe v2 response).

        Raises:
            InternalError: an input that is not an array of a Triton dtype, no outputs asked
                for, or Triton rejected a shape/dtype/name (all built by this server).
            NotFoundError: unknown model or version (or not a model name).
            InvalidArgumentError: a version Triton cannot parse (field ``model.version``).
            DeadlineExceededError: the call ran past its timeout.
            UnavailableError: Triton is down, the model has no loaded version, or it failed.
        """
        _known_name(model, "infer")
        if not outputs:
            raise InternalError(f"infer {model}: name at least one output")
        if not inputs:
            raise InternalError(f"infer {model}: give at least one input")
        infer_inputs = []
        for name, array in inputs.items():
            if not isinstance(array, np.ndarray):
                raise InternalError(f"infer {model}: input {name} is a {type(array).__name__}, not an array")
            datatype = np_to_triton_dtype(array.dtype)
            if datatype is None:
                raise InternalError(f"infer {model}: input {name} dtype {array.dtype} has no Triton type")
            infer_input = InferInput(name, list(array.shape), datatype)
            infer_input.set_data_from_numpy(np.ascontiguousarray(array))
            infer_inputs.append(infer_input)
        timeout = self._timeout(timeout_s)
        try:
            result = await self._client.infer(
                model,
                infer_inputs,
                model_version=version,
                outputs=[InferRequestedOutput(name) for name in outputs],
                client_timeout=timeout,
            )
        except InferenceServerException as error:
            raise map_triton_error(error, model=model, action="infer") from error
        out: dict[str, np.ndarray] = {}
        for name in outputs:
            try:
                array = result.as_numpy(name)
            except ValueError as error:  # e.g. empty data for a non-empty shape (numpy 2 in
                # the Python backend's environment returns empty outputs)
                raise UnavailableError(
                    "triton", f"infer {model}: malformed output {name!r}: {error}"
                ) from error
            if array is None:
                raise UnavailableError("triton", f"infer {model}: reply lacks output {name!r}")
            out[name] = array
        return out, str(result.get_response().model_version or version)

    async def is_ready(self, timeout_s: float | None = None) -> bool:
        """True when the server is live and ready; False when it is down or not ready."""
        timeout = self._timeout(timeout_s)
        try:
            return bool(
                await self._client.is_server_live(client_timeout=timeout)
                and await self._client.is_server_ready(client_timeout=timeout)
            )
        except InferenceServerException as error:
            logger.debug("triton readiness check failed: %s", error)
            return False

    async def model_ready(
        self, name: str, version: str = "", timeout_s: float | None = None
    ) -> bool:
        """True when the model (a given version, or any) is ready; False otherwise, also when
        the server cannot be reached, or for a name that is not a model name."""
        if not is_model_name(name):
            return False
        try:
            return bool(
                await self._client.is_model_ready(
                    name, version, client_timeout=self._timeout(timeout_s)
                )
            )
        except InferenceServerException as error:
            logger.debug("triton model readiness check for %s failed: %s", name, error)
            return False

    async def repository_index(self, timeout_s: float | None = None) -> list[ModelVersionState]:
        """Every model in the repository with its versions' states (Triton repository index).

        Raises:
            UnavailableError: Triton cannot be reached.
            DeadlineExceededError: the call timed out.
        """
        try:
            reply = await self._client.get_model_repository_index(
                client_timeout=self._timeout(timeout_s)
            )
        except InferenceServerException as error:
            raise map_triton_error(error, action="repository index") from error
        return [ModelVersionState(m.name, m.version, m.state, m.reason) for m in reply.models]

    async def model_config(
        self, name: str, version: str = "", timeout_s: float | None = None
    ) -> dict[str, Any]:
        """The loaded model's configuration as Triton's JSON (model_config.proto field names).

        Raises:
            NotFoundError: unknown model or version (or not a model name).
            InvalidArgumentError: a version Triton cannot parse (field ``model.version``).
            UnavailableError: the model has no loaded version, or Triton is down.
            DeadlineExceededError: the call timed out.
        """
        _known_name(name, "model config")
        try:
            reply = await self._client.get_model_config(
                name, version, as_json=True, client_timeout=self._timeout(timeout_s)
            )
        except InferenceServerException as error:
            raise map_triton_error(error, model=name, action="model config") from error
        return dict(reply["config"])

    async def model_statistics(
        self, name: str, version: str = "", timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Triton's inference statistics of one model as JSON (``model_stats[0]``): among
        others ``inference_count`` (requests' batch rows served) and ``execution_count``
        (model executions; fewer than requests when the dynamic batcher merged them).

        Raises:
            NotFoundError: unknown model (or not a model name).
            UnavailableError, DeadlineExceededError: Triton is down or the call timed out.
        """
        _known_name(name, "statistics")
        try:
            reply = await self._client.get_inference_statistics(
                name, version, as_json=True, client_timeout=self._timeout(timeout_s)
            )
        except InferenceServerException as error:
            raise map_triton_error(error, model=name, action="statistics") from error
        stats = reply.get("model_stats", [])
        if not stats:
            raise NotFoundError(f"no statistics for model {shown(name, MAX_MODEL_NAME_CHARS)}")
        return dict(stats[0])

    async def load_model(
        self,
        name: str,
        versions: Sequence[int] | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """Load (or reload) a model with Triton's explicit model control.

        With ``versions``, the model is loaded with a config override whose
        ``version_policy`` is ``specific: {versions: [...]}``: Triton's repository API takes
        the override as the *whole* config (model_repository extension, "config"
        parameter), so the base is ``config`` when given, else the model's current config
        (the model is first loaded with its repository config when it is not loaded).

        Args:
            name: model name.
            versions: version numbers to serve, or None for the repository config's policy.
            config: a full model config (JSON form) to load with, instead of the repository's.
            timeout_s: seconds the load may take; None uses ``self.load_timeout_s``.

        Raises:
            InternalError: an empty or non-positive version list.
            NotFoundError: the model is not in the repository (or not a model name), or none
                of ``versions`` is.
            FailedPreconditionError: Triton refused the (override) config.
            UnavailableError: Triton is down, or the load failed (e.g. a broken model file).
            DeadlineExceededError: the load ran past its timeout.
        """
        _known_name(name, "load")
        if versions is not None:
            if not versions or any(not 1 <= int(v) <= MAX_MODEL_VERSION for v in versions):
                raise InternalError(f"load {name}: give version numbers >= 1, got {list(versions)}")
        timeout = self.load_timeout_s if timeout_s is None else self._timeout(timeout_s)
        override: dict[str, Any] | None = dict(config) if config is not None else None
        if versions is not None:
            if override is None:
                if not await self.model_ready(name, timeout_s=min(timeout, self.timeout_s)):
                    await self._load(name, None, timeout)
                override = await self.model_config(name)
            override["version_policy"] = {"specific": {"versions": [int(v) for v in versions]}}
        await self._load(name, override, timeout)

    async def _load(self, name: str, config: Mapping[str, Any] | None, timeout_s: float) -> None:
        try:
            await self._client.load_model(
                name,
                config=json.dumps(config) if config is not None else None,
                client_timeout=timeout_s,
            )
        except InferenceServerException as error:
            raise map_triton_error(error, model=name, action="load") from error

    async def unload_model(self, name: str, timeout_s: float | None = None) -> None:
        """Unload every version of a model (Triton explicit model control). Triton answers an
        unload of a (well-formed) name it does not know with success; callers that must tell
        check the repository index first (``ModelAdmin.unload`` does).

        Raises:
            NotFoundError: not a model name.
            UnavailableError, DeadlineExceededError: Triton is down or the call timed out.
        """
        _known_name(name, "unload")
        try:
            await self._client.unload_model(name, client_timeout=self._timeout(timeout_s))
        except InferenceServerException as error:
            raise map_triton_error(error, model=name, action="unload") from error
