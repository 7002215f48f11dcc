"""The dependency rule of the packages, as each `__init__.py` states it:
`gateway -> agents -> metering`, `api -> metering`, and `load` measures from outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.test_layering import _imported_modules

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "metering": ("gateway", "agents", "api", "load"),
    "agents": ("gateway", "api", "load"),
    "api": ("gateway", "agents", "load"),
}


def _offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    sources = sorted((ROOT / package).rglob("*.py"))
    assert len(sources) > 5  # the walk found the package
    return [f"{path.relative_to(ROOT)}: {name}"
            for path in sources for name in _imported_modules(path)
            if name.split(".")[0] in forbidden]


@pytest.mark.parametrize(("package", "forbidden"), sorted(FORBIDDEN.items()))
def test_a_package_imports_only_what_its_init_allows(
        package: str, forbidden: tuple[str, ...]) -> None:
    assert _offenders(package, forbidden) == []
    docstring = (ROOT / package / "__init__.py").read_text()
    assert "May import" in docstring  # the rule is written where a reader looks first


def test_the_check_sees_a_relative_and_an_absolute_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import gateway.app\nfrom api.problems import Problem\n"
                      "from . import sibling\n")
    assert _imported_modules(source) == ["gateway.app", "api.problems"]
