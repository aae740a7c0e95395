"""Prompt templates are package data, and every placeholder they use is documented."""

from __future__ import annotations

import re

import pytest

from autopack.roles.prompts import template_text

ROLES = ("builder", "auditor", "planner")


@pytest.mark.parametrize("role", ROLES)
def test_every_placeholder_is_documented_in_the_header(role: str) -> None:
    text = template_text(role)
    header, body = text.split("-->", 1)
    used = set(re.findall(r"\$(\w+)", body))
    documented = set(re.findall(r"^\s+\$(\w+)", header, re.M))
    assert used, role
    assert used == documented
