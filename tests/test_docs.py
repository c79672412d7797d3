"""The README and docs/ point only at files that exist, and the README stays a front page."""
import re
import sys

import pytest

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
    assert "python -m pytest && python -m pytest -m slow" in text  # the test command .ci/run runs
    assert "PAPER.md" not in text and not any("PAPER.md" in p.read_text() for p in PAGES)


def test_readme_has_no_cpu_table_and_pages_have_titles():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150, "README.md is a front page: at most 150 lines"
    assert not re.search(r"^\| *CPU", text, re.M), "the per-CPU timing table belongs in docs/performance.md"
    for page in PAGES[1:]:
        assert page.read_text().startswith("# "), f"{page.name} must begin with a title"


# ----- every key and default docs/configuration.md names is the composed config's ------------------------------
SECTIONS = {"Top-level keys": [], "MNIST": ["generator=vae"], "Linear regression": ["generator=linear",
            "verifier=noisy_oracle"], "The Gaussian toy model": ["generator=gaussian", "verifier=noisy_oracle"]}
GENERATORS = {"vae", "linear", "gaussian"}


def _doc_rows() -> list[tuple[str, list[str], str]]:
    """(section, keys, default cell) of every `| key | default | meaning |` row of docs/configuration.md."""
    rows, section, table = [], None, False
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        if line.startswith("## "):
            section = next((s for s in SECTIONS if line[3:].startswith(s)), None)
        table = line.startswith("| key | default |") or (table and line.startswith("|"))
        if section is not None and table and line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            if re.fullmatch(r"`[\w.]+`(, `[\w.]+`)*", cells[0]):
                rows.append((section, re.findall(r"`([\w.]+)`", cells[0]), cells[1]))
    return rows


def _as_text(value) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _lookup(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"docs/configuration.md names `{key}`, not in the config"
        node = node[part]
    return node


def test_configuration_md_keys_and_defaults_are_the_composed_config():
    """A new or renamed key, or a changed default, must change docs/configuration.md with it."""
    from .conftest import compose_cfg

    rows = _doc_rows()
    assert len(rows) >= 20, "the tables of docs/configuration.md were not found"
    checked = 0
    for section, keys, cell in rows:
        if "$" in cell:  # an environment-dependent default (data.root)
            continue
        parts = [p.strip() for p in cell.split(", ")]
        if len(parts) != len(keys) and len(keys) > 1:
            raise AssertionError(f"{keys}: {len(keys)} keys but defaults {cell!r}")
        per_generator = {}
        if len(keys) == 1 and all(p.split(" ")[0] in GENERATORS for p in parts):  # "vae 3, linear 10"
            per_generator = {p.split(" ")[0]: p.split(" ", 1)[1] for p in parts}
            parts = [None]
        for key, want in zip(keys, parts):
            cases = ([(SECTIONS[section], want)] if not per_generator
                     else [([f"generator={g}"], v) for g, v in per_generator.items()])
            for overrides, expect in cases:
                expect = re.sub(r"\s*\(.*\)$", "", expect.strip("`")).strip("`")  # "null (= 0.1)" -> "null"
                got = _as_text(_lookup(compose_cfg(overrides), key))
                try:
                    same = float(got) == float(expect)
                except ValueError:
                    same = got == expect
                assert same, f"docs/configuration.md says {key} = {expect} ({section}); the config has {got}"
                checked += 1
    assert checked >= 25


# ----- every interval README.md and results.md quote is a comparison of the committed rows ----------------------
@pytest.fixture(scope="module")
def rows_index():
    sys.path.insert(0, str(ROOT / "scripts"))
    import check_docs
    return check_docs, check_docs.indexes()


def test_every_quoted_interval_is_a_comparison_of_the_committed_rows(rows_index):
    """scripts/check_docs.py: each `M [L, H]` and `[L, H]` on the checked pages is a comparison its section's entries
    make from docs/results/*_rows.csv, rounded to the printed decimals, and n.d. exactly where the interval holds the
    null."""
    check_docs, index = rows_index
    bad = check_docs.check_intervals(index)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_a_quoted_interval_changed_in_its_last_digit_is_caught(rows_index, tmp_path, page):
    """Quoted intervals (every one of the README's, every 20th of results.md's), one number at a time moved by one
    in its last printed digit in a copy of the page, fail the check. (A table's single numbers are checked too, but
    only for being some mean of the rows: a short one can equal another by chance, so they are not moved here.)"""
    check_docs, index = rows_index
    lines = (ROOT / page).read_text().splitlines()
    quoted = [q for q in check_docs.quoted(ROOT / page, list(index)) if len(q.nums) > 1]  # the intervals
    assert len(quoted) > (5 if page == "README.md" else 400)
    for n, q in enumerate(quoted[:: 1 if page == "README.md" else 20]):
        i, nums = q.line, q.nums
        line = lines[i - 1]
        rx = check_docs.TRIPLE if len(nums) == 3 else check_docs.PAIR
        mt = next(m for m in rx.finditer(line) if m.groups() == nums)
        k = 1 + n % len(nums)  # which of the numbers moves
        d = check_docs._decimals(nums[k - 1])
        moved = f"{check_docs._value(nums[k - 1]) + 10 ** -d:.{d}f}"
        copy = tmp_path / f"{n}.md"
        copy.write_text("\n".join([*lines[:i - 1], line[:mt.start(k)] + moved + line[mt.end(k):], *lines[i:]]))
        bad = check_docs.check_intervals(index, pages=[str(copy)])
        assert any(f":{i}: " in b for b in bad), f"{page}:{i}: {nums[k - 1]} -> {moved} in {nums} was not caught"


def test_every_file_in_docs_figures_is_cited():
    """No stale figure: each file under docs/figures is shown or named by a page (the reproduce entries' figures are
    shown in results.md: test_reproduce)."""
    text = "\n".join(p.read_text() for p in PAGES)
    stale = [f.name for f in sorted((ROOT / "docs" / "figures").iterdir()) if f.name not in text]
    assert not stale, f"in docs/figures but cited nowhere: {stale}"


def test_every_claim_in_docs_claims_holds_on_the_rows(rows_index):
    """docs/claims.yaml: each sentence that states a direction or "not distinguishable" stands on its page and its
    comparison gives that verdict at every generation it names."""
    check_docs, _ = rows_index
    bad = check_docs.check_claims()
    assert not bad, "\n".join(bad)


def test_a_claim_the_rows_contradict_or_the_page_lacks_fails(rows_index, tmp_path):
    import yaml

    check_docs, _ = rows_index
    claims = yaml.safe_load((ROOT / "docs" / "claims.yaml").read_text())
    assert len(claims) >= 20
    flipped = [dict(c, verdict="higher" if c["verdict"] != "higher" else "n.d.") for c in claims if "verdict" in c]
    values = [c for c in claims if "value" in c]
    assert len(values) >= 8
    moved = []  # a value moved by one in its last digit, in the claim and in its words alike: the rows refuse it
    for c in values:
        v = c["value"]
        d = len(v.split(".")[1]) if "." in v else 0
        w = f"{float(v) + 10 ** -d:.{d}f}"
        moved.append(dict(c, value=w, text=c["text"].replace(v, w)))
    gone = [dict(c, text=c["text"] + " (words not on the page)") for c in claims[:3]]
    for case, expect in ((flipped, "not "), (gone, "its words are not on"), (moved, "does not print as")):
        path = tmp_path / "claims.yaml"
        path.write_text(yaml.safe_dump(case))
        bad = check_docs.check_claims(path)
        hit = {line.split(":")[0] for line in bad if expect in line}
        assert len(hit) == len(case), f"{len(case) - len(hit)} changed claim(s) passed: {bad}"


def test_a_tables_single_numbers_are_means_of_the_rows(rows_index, tmp_path):
    """A table cell's number outside an interval must be a mean of its entry's rows (or a summary figure): a slip
    of the kind found by hand (0.890 for 0.892) fails."""
    check_docs, index = rows_index
    singles = [q for q in check_docs.quoted(ROOT / "docs" / "results.md", list(index)) if len(q.nums) == 1]
    assert len(singles) > 50
    text = (ROOT / "docs" / "results.md").read_text()
    assert "| replace, variance fitted | 0.979 / 0.892 / 0.610 |" in text
    copy = tmp_path / "results.md"
    copy.write_text(text.replace("0.979 / 0.892 / 0.610", "0.979 / 0.890 / 0.610"))
    assert any("table cell 0.890" in b for b in check_docs.check_intervals(index, pages=[str(copy)]))
