"""The README and docs/ point only at files that exist, and the README stays a front page."""
import re

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # [text](target)
PATH = re.compile(r"`((?:docs|examples|scripts|conf|src|tests)/[\w./-]+)`")  # `folder/file` in backticks


def test_every_link_and_named_file_exists():
    missing = []
    for page in PAGES:
        text = page.read_text()
        for target in LINK.findall(text):
            if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(ROOT)}: link {target}")
        for path in PATH.findall(text):
            if not (ROOT / path.rstrip(".")).exists() and "NNN" not in path and "<" not in path:
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "\n".join(missing)


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "python -m pytest && python -m pytest -m slow" in text  # the test command .ci/run runs
    assert "PAPER.md" not in text and not any("PAPER.md" in p.read_text() for p in PAGES)
