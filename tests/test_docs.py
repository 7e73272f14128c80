"""Docs are tested like code: every setting and every command must appear in the README."""

from pathlib import Path

import typer.main

from paperfeed.cli import app
from paperfeed.config import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands(group: typer.Typer, prefix: str = "paperfeed") -> list[str]:
    click_group = typer.main.get_command(group)
    found: list[str] = []

    def walk(cmd, path):  # type: ignore[no-untyped-def]
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, f"{path} {name}")
        else:
            found.append(path)

    walk(click_group, prefix)
    return found


def test_every_setting_is_documented():
    missing = [
        f"PAPERFEED_{name.upper()}"
        for name in Settings.model_fields
        if f"PAPERFEED_{name.upper()}" not in README
    ]
    assert not missing, f"settings missing from README: {missing}"


def test_every_command_is_documented():
    missing = [c for c in _commands(app) if f"`{c}" not in README]
    assert not missing, f"commands missing from README: {missing}"
