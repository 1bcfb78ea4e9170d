"""The ADRs are numbered once each, and every ADR a document or docstring cites exists.

Parallel work has twice given two decisions one number; a citation of a renumbered ADR then
points a reader at the wrong decision. This test makes either mistake a failing build.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADR_DIR = ROOT / "docs" / "adr"
CITED = re.compile(r"\bADRs? (\d{1,4})\b|adr/(\d{4})-[a-z0-9-]+\.md")


def _numbers() -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for path in sorted(ADR_DIR.glob("[0-9][0-9][0-9][0-9]-*.md")):
        out.setdefault(int(path.name[:4]), []).append(path.name)
    return out


def test_each_adr_number_is_used_once_and_matches_its_title() -> None:
    numbers = _numbers()
    assert numbers, "no ADRs found"
    assert {n: names for n, names in numbers.items() if len(names) > 1} == {}
    for n, [name] in numbers.items():
        title = (ADR_DIR / name).read_text().splitlines()[0]
        assert title.startswith(f"# {n}. "), f"{name}: title {title!r} does not carry its number {n}"


def test_every_cited_adr_exists() -> None:
    numbers = _numbers()
    files = [*ROOT.glob("docs/**/*.md"), ROOT / "README.md", ROOT / "CHANGELOG.md",
             *ROOT.glob("src/**/*.py"), *ROOT.glob("bench/**/*.py")]
    missing = []
    for path in files:
        for match in CITED.finditer(path.read_text()):
            n = int(match.group(1) or match.group(2))
            if n not in numbers:
                missing.append(f"{path.relative_to(ROOT)}: ADR {n}")
    assert missing == []
