"""The one durable-file helper: a file appears whole under its name or not at all."""

import errno
import hashlib
import stat
from pathlib import Path

import pytest

from allcare.core.durable import durable_path, durable_writer, sweep_partials, write_durably
from allcare.store.model_files import ModelFiles
from allcare.store.objects._local import LocalObjects


def test_a_written_file_appears_whole_and_no_temp_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "folder" / "photo.enc"
    write_durably(target, b"sealed bytes")
    assert target.read_bytes() == b"sealed bytes"
    assert sorted(p.name for p in target.parent.iterdir()) == ["photo.enc"]


def test_an_exception_leaves_neither_the_target_nor_a_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_bytes(b"the old file")

    def interrupted() -> None:
        with durable_writer(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        interrupted()
    assert target.read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_the_temp_name_can_keep_the_suffix_readers_go_by(tmp_path: Path) -> None:
    target = tmp_path / "export.onnx"
    with durable_path(target, keep_suffix=True, mode=0o400) as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".")
        assert temp.name.endswith(".partial.onnx")
        temp.write_bytes(b"onnx")
    assert stat.S_IMODE(target.stat().st_mode) == 0o400


def test_a_missing_folder_is_an_error_naming_it_when_asked(tmp_path: Path) -> None:
    with (
        pytest.raises(FileNotFoundError) as raised,
        durable_path(tmp_path / "nowhere" / "clinic.zip", make_parents=False),
    ):
        pass
    assert raised.value.errno == errno.ENOENT
    assert raised.value.filename == str(tmp_path / "nowhere")


def test_the_sweep_removes_only_what_interrupted_writes_left(tmp_path: Path) -> None:
    kept = [tmp_path / "blobs" / "ab" / "x.enc", tmp_path / "models" / "v1" / "model.pt"]
    left = [
        tmp_path / "blobs" / "ab" / ".tmp123.partial",
        tmp_path / "model-cache" / ".tmp456.partial.onnx",
    ]
    for path in kept + left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert sweep_partials(tmp_path) == 2
    assert all(path.exists() for path in kept)
    assert not any(path.exists() for path in left)


def test_model_files_are_read_only_with_their_sha256(tmp_path: Path) -> None:
    source = tmp_path / "upload.onnx"
    source.write_bytes(b"a model")
    files = ModelFiles(tmp_path / "models", LocalObjects(tmp_path))
    stored = files.copy("v20261203_001", source)
    assert stored.key == "v20261203_001/model.onnx"
    path = tmp_path / "models" / stored.key
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert stored.sha256 == hashlib.sha256(b"a model").hexdigest()
    assert stored.size_bytes == len(b"a model")
    with pytest.raises(ValueError, match="no checkpoint"):
        files.write("v20261203_002", "model.pt", _refuse)
    assert not (tmp_path / "models" / "v20261203_002" / "model.pt").exists()
    assert list((tmp_path / "models" / "v20261203_002").iterdir()) == []


def _refuse(_temp: Path) -> None:
    raise ValueError("no checkpoint")
