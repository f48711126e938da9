"""Value types of ``wasteml.v1`` common messages used by several domains: model references and
fallback notices (``common.proto``)."""

from __future__ import annotations

from dataclasses import dataclass

from wasteml_server.core.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True, order=True)
class ModelRef:
    """A served model and one of its versions (KServe v2 / Triton name and version).

    Attributes:
        name: model name as in the Triton repository or the registry, e.g. ``"text_encoder"``.
        version: positive version number; None in a request means "the latest ready version".
    """

    name: str
    version: int | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"

    @classmethod
    def parse(cls, tag: str) -> ModelRef:
        """The inverse of ``str()``: ``"text_encoder:1"`` -> ``ModelRef("text_encoder", 1)``,
        ``"text_encoder"`` -> no version. Used where a reference is stored as text (the
        ``model`` field of a stored vector).

        Raises:
            ValueError: a version part that is not a positive integer.
        """
        name, sep, version = tag.partition(":")
        if not sep:
            return cls(name)
        if not version.isdigit() or int(version) < 1:
            raise ValueError(f"not a model reference: {tag!r}")
        return cls(name, int(version))

    @staticmethod
    def parse_version(version: str, field: str = "model.version") -> int | None:
        """A version as the contract carries it (a string): "" -> None (latest), else a
        positive integer.

        Raises:
            InvalidArgumentError: not a positive integer (naming ``field``).
        """
        if not version:
            return None
        if not version.isdigit() or int(version) < 1:
            raise InvalidArgumentError(field, f"must be a positive integer version, got {version!r}")
        return int(version)


@dataclass(frozen=True, slots=True)
class FallbackNotice:
    """A declared fallback that served (part of) a call (``wasteml.v1.FallbackNotice``).

    Attributes:
        dependency: the dependency not used, e.g. ``"triton"``, ``"milvus"``, ``"fill_level"``.
        served_by: what served instead, e.g. ``"constant-rate fill model"``.
        reason: why, in words.
    """

    dependency: str
    served_by: str
    reason: str
