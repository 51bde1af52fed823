"""``allcare --help`` reads like a well-kept CLI: plain usage lines, value names, a version."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from allcare.cli import app


def _commands() -> list[list[str]]:
    root = get_command(app)
    found = [[]]
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        found.append([name])
        found.extend([name, sub] for sub in getattr(command, "commands", {}))
    return found


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"allcare {version('allcare-server')}"


@pytest.mark.parametrize("words", _commands(), ids=lambda words: " ".join(words) or "allcare")
def test_every_help_page_is_plain(words: list[str]) -> None:
    result = CliRunner().invoke(app, [*words, "--help"], prog_name="allcare")
    assert result.exit_code == 0, result.output
    text = result.stdout
    usage = text.splitlines()[0]
    assert usage.startswith("Usage: allcare")
    assert "{" not in usage
    for placeholder in ("<bool>", "<str>", "<int", "<float", "╭"):
        options = text.split("Options:", 1)[-1]
        assert placeholder not in options, (placeholder, text)
    assert "--install-completion" not in text


def test_usage_names_arguments_and_serve_points_to_the_settings() -> None:
    train = CliRunner().invoke(app, ["train", "--help"], prog_name="allcare").stdout
    assert train.splitlines()[0] == "Usage: allcare train [OPTIONS] DATA_DIR"
    assert "--epochs INTEGER" in train
    assert "--init [pretrained|random]" in train
    serve = CliRunner().invoke(app, ["serve", "--help"], prog_name="allcare").stdout
    assert "STORAGE_ROOT" in serve
    assert 'README\'s "Settings" table' in serve.replace("\n  ", " ")
