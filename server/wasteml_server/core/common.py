"""Value types of ``wasteml.v1`` common messages used by several domains: model references and
fallback notices (``common.proto``).

Model names and versions arrive from callers as strings; this module holds the one validation of
each (:meth:`ModelRef.parse_name`, :meth:`ModelRef.parse_version`), so every RPC that names a
model rejects the same malformed input with the same ``INVALID_ARGUMENT`` before anything reaches
the model server or the file system:

- a name is 1..``MAX_MODEL_NAME_CHARS`` ASCII letters, digits, ``_``, ``.``, ``-``, not starting
  with ``.`` or ``-`` (so no path separators, no ``..``, never too long for a directory name:
  Triton model names are directory names in its repository);
- a version is ASCII digits only, no leading zero, ``1..MAX_MODEL_VERSION`` (Triton parses
  versions as signed 64-bit integers). ``str.isdigit`` is not enough: it is True for ``"²"``
  (which ``int`` refuses) and for ``"٣"`` (which ``int`` reads as 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wasteml_server.core.errors import InvalidArgumentError, shown

MAX_MODEL_VERSION = 2**63 - 1
"""Largest model version: Triton reads versions as int64 (``std::stol``)."""

MAX_MODEL_NAME_CHARS = 128
"""Longest model name, characters (far below a file system's 255-byte name limit)."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_VERSION = re.compile(r"[1-9][0-9]*")  # [0-9], not \d: \d matches every Unicode digit
_MAX_VERSION_DIGITS = len(str(MAX_MODEL_VERSION))


def version_number(text: str) -> int | None:
    """The version ``text`` spells, or None when it is not one.

    A version is ASCII decimal digits without a leading zero, in ``1..MAX_MODEL_VERSION``:
    ``"3"`` -> 3; ``"03"``, ``"0"``, ``"-1"``, ``"²"``, ``"٣"``, ``"9" * 20`` -> None. Never raises
    and never converts more than ``len(str(MAX_MODEL_VERSION))`` digits (Python refuses to
    convert strings of more than 4300 digits). For version folder names and the versions a
    model server reports as well as for requests.
    """
    if not isinstance(text, str) or len(text) > _MAX_VERSION_DIGITS or not _VERSION.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_MODEL_VERSION else None


def is_model_name(name: str) -> bool:
    """True when ``name`` is a well-formed model name (module docstring)."""
    return (isinstance(name, str) and 0 < len(name) <= MAX_MODEL_NAME_CHARS
            and _NAME.fullmatch(name) is not None)


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
            ValueError: a version part that is not a version (``version_number``).
        """
        name, sep, version = tag.partition(":")
        if not sep:
            return cls(name)
        number = version_number(version)
        if number is None:
            raise ValueError(f"not a model reference: {shown(tag)}")
        return cls(name, number)

    @staticmethod
    def parse_version(version: str, field: str = "model.version") -> int | None:
        """A version as the contract carries it (a string): "" -> None (latest), else the
        version number (ASCII digits, no leading zero, 1..``MAX_MODEL_VERSION``).

        The one validation of caller-given versions: call it before any model-server call.

        Raises:
            InvalidArgumentError: anything else (naming ``field``).
        """
        if not version:
            return None
        number = version_number(version)
        if number is None:
            raise InvalidArgumentError(
                field, f"must be a model version: ASCII digits without a leading zero, 1.."
                f"{MAX_MODEL_VERSION} (or empty for the latest), got {shown(version)}")
        return number

    @staticmethod
    def parse_name(name: str, field: str = "model.name") -> str:
        """A model name as a request carries it, checked (module docstring); returned as is.

        The one validation of caller-given model names: call it before the name reaches the
        model server, a file path or an error message.

        Raises:
            InvalidArgumentError: empty, longer than ``MAX_MODEL_NAME_CHARS``, or a character
                outside ``[A-Za-z0-9_.-]`` (or a leading ``.``/``-``), naming ``field``.
        """
        if not name:
            raise InvalidArgumentError(field, "a model name is required")
        if len(name) > MAX_MODEL_NAME_CHARS:
            raise InvalidArgumentError(field, f"at most {MAX_MODEL_NAME_CHARS} characters, got "
                                       f"{len(name)}")
        if not is_model_name(name):
            raise InvalidArgumentError(field, "only ASCII letters, digits, '_', '.' and '-' (not "
                                       f"first: '.', '-'), got {shown(name)}")
        return name


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
