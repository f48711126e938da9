"""Version bookkeeping of the model repository."""

from __future__ import annotations

import pytest

from wasteml_server.core.errors import NotFoundError
from wasteml_server.forecasting import repository


def test_versions_count_only_complete_exports(tmp_path) -> None:
    """A version folder holding only .gitkeep (as in git) is not trained; the first export is 1,
    the next 2; a folder without metadata.json is ignored."""
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / ".gitkeep").touch()
    assert repository.trained_versions(tmp_path, "m") == []
    assert repository.next_version(tmp_path, "m") == 1
    (tmp_path / "m" / "1" / repository.METADATA_FILE).write_text('{"version": 1}')
    (tmp_path / "m" / "3").mkdir()
    assert repository.trained_versions(tmp_path, "m") == [1]
    assert repository.next_version(tmp_path, "m") == 2
    assert repository.load_metadata(tmp_path, "m") == {"version": 1}
    with pytest.raises(NotFoundError):
        repository.resolve_version(tmp_path, "m", 3)
    with pytest.raises(NotFoundError):
        repository.resolve_version(tmp_path, "other", None)
