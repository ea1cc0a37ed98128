"""The architecture, checked: each domain imports only from the domains below it, so data flows
one way (publish and audience -> deliver -> web -> cli) and nothing reaches back."""

from __future__ import annotations

import ast

import pytest

from .helpers import REPO

PACKAGE = REPO / "src" / "hebdo_mail"
CORE = {
    "errors", "config", "checks", "checkedsettings", "installed", "vocabulary", "workspace", "atomic",
    "storeurl", "tomlfile", "__init__", "",
}  # fmt: skip
# What each domain may import from, besides itself and the core modules.
ALLOWED = {
    "core": set(),
    "publish": set(),
    "audience": set(),
    "deliver": {"publish", "audience"},
    "web": {"publish", "audience", "deliver"},
    "cli": {"publish", "audience", "deliver", "web"},
}


def domain_of(dotted: str) -> str:
    first = dotted.split(".")[0]
    return "core" if first in CORE else first


def imported_domains(path: ast.Module, package: list[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(path):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = ".".join([*base, node.module or ""]).strip(".")
            if node.module or target:
                found.add(domain_of(target))
            # else: `from .. import __version__`, the package itself (core)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hebdo_mail."):
            found.add(domain_of(str(node.module).removeprefix("hebdo_mail.")))
    return found


@pytest.mark.parametrize(
    "module", sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")), ids=str
)
def test_dependencies_point_down_the_pipeline(module: str) -> None:
    path = PACKAGE / module
    package = list(path.relative_to(PACKAGE).parent.parts)
    # __main__ is the command line's entry point (python -m hebdo_mail).
    domain = package[0] if package else ("cli" if module == "__main__.py" else "core")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wrong = imported_domains(tree, package) - ALLOWED[domain] - {domain, "core"}
    assert not wrong, f"{module} ({domain}) imports from {sorted(wrong)}"
