"""`omnistock serve`'s options and the README's configuration table say the same."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from omnistock.server.cli import build_parser
from omnistock.server.domain.stock import DEFAULT_BANDED_MAX_QUANTITY

README = Path(__file__).resolve().parents[2] / "README.md"


def _serve_parser() -> argparse.ArgumentParser:
    commands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    parser: argparse.ArgumentParser = commands.choices["serve"]
    return parser


def _configuration_rows() -> dict[str, str]:
    """Each flag of the README's configuration table, with its row."""
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for row in section.splitlines():
        if row.startswith("| `--"):
            for flag in re.findall(r"`(--[a-z-]+)`", row.split("|")[1]):
                rows[flag] = row
    return rows


def test_every_serve_option_is_in_the_readme_and_nothing_else_is() -> None:
    options = {
        option
        for action in _serve_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert set(_configuration_rows()) == options


def test_the_readme_gives_the_banded_quantity_caps_variable_and_default() -> None:
    cells = [cell.strip() for cell in _configuration_rows()["--banded-max-quantity"].split("|")]
    assert cells[2:4] == ["`OMNISTOCK_BANDED_MAX_QUANTITY`", str(DEFAULT_BANDED_MAX_QUANTITY)]
