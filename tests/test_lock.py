"""requirements.lock pins every dependency pyproject.toml declares, within the range it declares
(`make lock` after changing them), so `make install` is reproducible."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def test_the_lock_pins_every_declared_dependency_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = [*project["dependencies"], *extras["dev"], *extras["embedded"]]
    pinned: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9._-]+)==([^\s;]+)", line)
        if found:
            pinned[canonicalize_name(found.group(1))] = found.group(2)
    for spec in map(Requirement, declared):
        if spec.marker is not None and not spec.marker.evaluate():
            continue
        name = canonicalize_name(spec.name)
        assert name in pinned, f"{spec.name} is not in requirements.lock: run `make lock`"
        assert spec.specifier.contains(pinned[name], prereleases=True), f"{spec} but the lock has {pinned[name]}"
