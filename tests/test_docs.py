"""docs/reliability.md backs each guarantee with a named test: every name it gives must exist."""

from __future__ import annotations

import re

from .helpers import REPO


def test_every_test_named_in_the_reliability_page_exists() -> None:
    page = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = re.findall(r"`(test_\w+\.py)::(\w+)", page)
    assert len(named) > 30
    missing = [
        f"{module}::{name}"
        for module, name in named
        if not re.search(
            rf"^def {name}\(", (REPO / "tests" / module).read_text(encoding="utf-8"), re.M
        )
    ]
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
