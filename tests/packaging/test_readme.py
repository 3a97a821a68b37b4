"""The README says what the code does: its settings table, its layout tree and its measured figures."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from clickhouse_privatelink.settings import Settings
from tests.packaging.support import ROOT

README = ROOT / "README.md"
OPERATOR = ROOT / "operator" / "clickhouse_privatelink"
SETTINGS_MODULE = Path("operator/clickhouse_privatelink/settings.py")
MEASURE = "scripts/measure.py"
START, END = "<!-- measurements:start -->", "<!-- measurements:end -->"
ENV_NAME = re.compile(r"CHPL_[A-Z0-9_]+")


def readme() -> str:
    return README.read_text()


def section(title: str) -> str:
    """The text under a Markdown heading, up to the next heading of the same or a higher level."""
    text = readme()
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.MULTILINE)
    assert match, f"README.md has no '{title}' section"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


# ------------------------------------------------------------------------------------------ settings


def variables_read_by_the_code() -> dict[str, Path]:
    """Every ``CHPL_*`` name the operator's code holds as a string constant (what it reads from the
    environment: settings.py, wiring/runner.py, the ClickHouse client's rate limit...), with its file."""
    found: dict[str, Path] = {}
    for path in sorted(OPERATOR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and ENV_NAME.fullmatch(node.value)
            ):
                found.setdefault(node.value, path.relative_to(ROOT))
    return found


def settings_table() -> dict[str, str]:
    """The README's settings table: variable -> default as written (without backticks)."""
    rows: dict[str, str] = {}
    for line in section("Settings").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and (m := re.fullmatch(r"`(CHPL_[A-Z0-9_]+)`", cells[0])):
            rows[m.group(1)] = cells[1].strip("`")
    return rows


def test_the_code_reads_the_variables_the_brief_names() -> None:
    """Guards the scan itself: it must see the settings, the log format and the rate limit."""
    found = variables_read_by_the_code()
    assert {"CHPL_POLL_INTERVAL", "CHPL_LOG_FORMAT", "CHPL_CLICKHOUSE_RATE_LIMIT"} <= set(found)
    # Every setting is read in one place, once, at start-up.
    assert found["CHPL_LOG_FORMAT"] == found["CHPL_CLICKHOUSE_RATE_LIMIT"] == SETTINGS_MODULE


def test_every_variable_the_code_reads_is_in_the_settings_table() -> None:
    documented = settings_table()
    missing = {
        name: str(path) for name, path in variables_read_by_the_code().items() if name not in documented
    }
    assert not missing, f"read by the code but not in README.md's settings table: {missing}"


def test_every_variable_in_the_settings_table_is_read_by_the_code() -> None:
    read = variables_read_by_the_code()
    stale = sorted(set(settings_table()) - set(read))
    assert not stale, (
        f"in README.md's settings table but read nowhere in operator/clickhouse_privatelink: {stale}"
    )


def settings_fields() -> dict[str, str]:
    """Variable -> Settings field, from ``from_env``'s calls such as ``_float("CHPL_X", cls.x)``."""
    tree = ast.parse((OPERATOR / "settings.py").read_text())
    fields: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            name, default = node.args[0], node.args[1]
            if (
                isinstance(name, ast.Constant)
                and isinstance(name.value, str)
                and ENV_NAME.fullmatch(name.value)
                and isinstance(default, ast.Attribute)
            ):
                fields[name.value] = default.attr
    return fields


def test_numeric_defaults_in_the_table_are_the_code_s() -> None:
    """Where the code's default is a number, the table's default is the same number (other defaults, and
    rows missing from the table, are the tests above's business)."""
    table, defaults = settings_table(), Settings()
    wrong: list[str] = []
    for variable, field_name in settings_fields().items():
        default = getattr(defaults, field_name)
        if variable not in table or isinstance(default, bool) or not isinstance(default, int | float):
            continue
        try:
            same = float(table[variable]) == float(default)
        except ValueError:
            same = False
        if not same:
            wrong.append(f"{variable}: README {table[variable]!r}, code {default!r}")
    assert not wrong, f"README.md's settings table has the wrong defaults: {wrong}"


# ------------------------------------------------------------------------------------------ layout


def layout_tree() -> list[str]:
    text = section("How it works")
    match = re.search(r"^```\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert match, "the 'How it works' section has no tree in a code block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def tree_entries() -> list[tuple[Path, list[str]]]:
    """(base folder, [paths in the line's path column, then .py names in its description]) per line.

    The path column ends at the first run of two spaces; an unindented line names a folder of the repository,
    an indented one a path inside the last unindented folder. Several paths are separated by ", "."""
    entries: list[tuple[Path, list[str]]] = []
    base = ROOT
    for line in layout_tree():
        column, _, description = line.strip().partition("  ")
        paths = [p.strip() for p in column.split(", ")]
        if not line.startswith(" "):
            base = ROOT / paths[0]
            entries.append((ROOT, paths))
            continue
        described = re.findall(r"(?<![\w/.`])([\w/]+\.py)\b", description)
        entries.append((base, paths + [f"?{name}" for name in described]))
    return entries


def test_the_tree_names_the_two_packages() -> None:
    top = [paths[0] for base, paths in tree_entries() if base == ROOT]
    assert top == ["operator/clickhouse_privatelink/", "operator/clickhouse_privatelink_testkit/"]


def test_every_path_in_the_tree_exists() -> None:
    missing: list[str] = []
    for base, paths in tree_entries():
        for path in paths:
            if not path.startswith("?"):
                if not (base / path).exists():
                    missing.append(str((base / path).relative_to(ROOT)))
                continue
            # A file named in a description: beside the line's own path, or anywhere in its package.
            name = path[1:]
            line_dirs = [base / p for p in paths if not p.startswith("?")]
            candidates = [d / name for d in line_dirs] + [d.parent / name for d in line_dirs]
            if not any(c.exists() for c in candidates) and not list(base.rglob(name)):
                missing.append(f"{name} (named beside {paths[0]})")
    assert not missing, f"README.md's 'How it works' tree names paths that do not exist: {missing}"


# ------------------------------------------------------------------------------------------ measurements


def measurements() -> str:
    text = readme()
    assert text.count(START) == 1 and text.count(END) == 1, f"README.md needs one {START} ... {END}"
    start, end = text.index(START), text.index(END)
    assert start < end
    return text[start + len(START) : end]


def test_the_measurements_section_names_its_script() -> None:
    body = measurements()
    assert f"python3 {MEASURE}" in body
    assert (ROOT / MEASURE).is_file()


def test_the_measurements_section_holds_the_figures() -> None:
    body = measurements()
    rows = [line for line in body.splitlines() if line.startswith("|")]
    assert len(rows) >= 3, "the measurements section has no table (run python3 scripts/measure.py)"
    for figure in ("`make sandbox`", "`make test`", "runtime tree", ".tools"):
        assert any(figure in row for row in rows), f"no row about {figure}"
    assert re.search(r"\d+ cores \(`nproc`\)", body), "the measurements do not say on what machine"
    assert re.search(r"\d{4}-\d{2}-\d{2}", body), "the measurements are not dated"
