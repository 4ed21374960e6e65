"""Identifiers: location ids (POS store codes) and skus."""

from __future__ import annotations

import re

from omnistock.server.domain.errors import Violations

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
ID_RULE = "must be 1-64 characters of A-Z a-z 0-9 . _ - and start with a letter or digit"


def is_valid_id(value: str) -> bool:
    return _matches(value) is not None


_matches = ID_PATTERN.fullmatch


def check_id(violations: Violations, value: str, field_path: str) -> None:
    if not value:
        violations.add(field_path, "is required")
    elif not is_valid_id(value):
        violations.add(field_path, ID_RULE)
