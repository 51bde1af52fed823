"""Reading the old server's files: every unreadable item is a problem with its place."""

from pathlib import Path

from allcare.services.migration.legacy_reader import LegacyTree, Problem, Record
from allcare.store.crypto import parse_key
from tests.legacy_tree import OLD_KEY, build_old_server


def test_without_the_key_encrypted_items_are_problems_not_errors(tmp_path: Path) -> None:
    server = build_old_server(tmp_path / "old")
    items = list(LegacyTree(server.root).records())
    problems = [str(i) for i in items if isinstance(i, Problem)]
    assert sum("no data encryption key was given" in p for p in problems) == 3
    assert any("metadata.jsonl:3: not JSON" in p for p in problems)
    owners = {i.owner for i in items if isinstance(i, Record)}
    assert owners == {"user001", "user002", "user005"}
    photo = LegacyTree(server.root).photo("user002", server.ids["D"])
    assert isinstance(photo, Problem)
    assert "no key was given" in photo.message


def test_with_the_key_photos_and_lines_decrypt(tmp_path: Path) -> None:
    server = build_old_server(tmp_path / "old")
    tree = LegacyTree(server.root, key=parse_key(OLD_KEY))
    data, where = tree.photo("user002", server.ids["D"])
    assert data == server.images[server.ids["D"]]
    assert where.file.suffix == ".bin"
    records = [i for i in tree.records() if isinstance(i, Record) and i.owner == "user002"]
    assert {r.data["case_id"] for r in records} == {"10000", "10005"}
    model = tree.model_file("v20260205_001", tree.model_list()["models"]["v20260205_001"])
    assert model is not None
    assert model.name == "[2026-02-05] - mobilenet_v3_large.pt"
    assert tree.training_log(model) == [{"epoch": 1, "train_loss": 1.9, "val_accuracy": 0.3}]
