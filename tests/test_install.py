"""The install path: what `make` installs is pinned, so a fresh clone gets what was tested."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    """constraints.txt's `name==version` lines, by canonical name."""
    found: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            found[canonicalize_name(name)] = version
    return found


def test_every_dependency_and_dev_tool_is_pinned_to_one_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pinned = pins()
    unpinned = [r for r in named if canonicalize_name(Requirement(r).name) not in pinned]
    assert not unpinned, f"add to constraints.txt: {unpinned}"
    for requirement in map(Requirement, named):  # a pin outside pyproject's range never installs
        version = pinned[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


def test_torch_stays_the_cpu_build_on_disk() -> None:
    assert pins()["torch"] == "2.13.0"
