"""The README and the guide in docs/ stay true to the repository: every relative link resolves
(to a file, and to a heading where it names one), no link leaves the repository, every
`python -m MODULE` and `bash scripts/...` they name exists, and docs/config.md is what the config's
docstrings generate. Nothing here imports torch or the modules it checks."""

from __future__ import annotations

import dataclasses
import importlib.machinery
import re
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

from tdsclip.config import REFERENCE_COMMAND, RunConfig, field_docs, reference

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
README_MAX_LINES = 250

FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_LINK = re.compile(r"""<(?:a|img)\s[^>]*?(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
BARE_URL = re.compile(r"\b(?:https?|ftp)://|\bwww\.\w", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
PYTHON_M = re.compile(r"\bpython[0-9.]*\s+-m\s+([A-Za-z_][\w.]*)")
BASH_SCRIPT = re.compile(r"\bbash\s+(scripts/[\w./-]+)")


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def split_code(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(prose lines, code-block lines), each with its 1-based line number."""
    prose, code, fence = [], [], ""
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence:
            if match and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = ""
            else:
                code.append((number, line))
        elif match:
            fence = match.group(1)
        else:
            prose.append((number, line))
    return prose, code


def prose_blocks(page: Path) -> list[tuple[int, str]]:
    """The prose of a page as blocks (paragraphs, list items, table rows run together until a blank
    line), each with its first line's number and without code spans: a link may wrap over lines."""
    prose, _ = split_code(page.read_text(encoding="utf-8"))
    blocks: list[tuple[int, list[str]]] = []
    previous = -1
    for number, line in prose:
        if not line.strip():
            previous = -1
            continue
        if number == previous + 1 and blocks:
            blocks[-1][1].append(line)
        else:
            blocks.append((number, [line]))
        previous = number
    return [(start, CODE_SPAN.sub("", "\n".join(lines))) for start, lines in blocks]


def links(page: Path) -> list[tuple[int, str]]:
    """Every link target of a page (inline, reference definitions, HTML), with the line its block starts on."""
    found = []
    for number, block in prose_blocks(page):
        for pattern in (INLINE_LINK, REFERENCE_DEFINITION, HTML_LINK):
            found += [(number, match.group(1)) for match in pattern.finditer(block)]
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link and code markup dropped, lower case, punctuation other
    than '-' and '_' removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    prose, _ = split_code(page.read_text(encoding="utf-8"))
    seen: Counter[str] = Counter()
    found = set()
    for _, line in prose:
        heading = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
        found.update(re.findall(r"""<a\s[^>]*?(?:id|name)\s*=\s*["']([^"']+)["']""", line))
    return frozenset(found)


def test_the_guide_exists_and_the_readme_is_short():
    names = {page.name for page in PAGES}
    assert {"config.md", "install.md", "data.md", "model.md", "training.md", "records.md"} <= names
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail into docs/"
    )


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_resolves_inside_the_repository(page):
    problems = []
    for number, target in links(page):
        where = f"{_name(page)}:{number}: {target!r}"
        if SCHEME.match(target) or target.startswith("/"):
            problems.append(f"{where} leaves the repository (links must be relative paths inside it)")
            continue
        path_part, _, fragment = target.partition("#")
        file = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not file.is_relative_to(ROOT):
            problems.append(f"{where} points outside the repository")
        elif not file.exists():
            problems.append(f"{where}: no such file {file.relative_to(ROOT)}")
        elif fragment and file.suffix == ".md" and unquote(fragment) not in anchors(file):
            problems.append(f"{where}: {file.relative_to(ROOT)} has no heading with anchor #{fragment}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_no_bare_web_addresses_in_the_prose(page):
    """GitHub turns a bare address into a link: it would leave the repository too (addresses in
    code, such as a local MLflow server's, are fine)."""
    found = [
        f"{_name(page)}:{n}: {match.group(0)}..."
        for n, block in prose_blocks(page)
        for match in BARE_URL.finditer(block)
    ]
    assert not found, "\n".join(found)


def module_runs(name: str) -> bool:
    """True when `python -m name` finds something to run, found without importing any of it: a
    module whose source has a __main__ block, or a package with a __main__ module."""
    parts = name.split(".")
    spec = importlib.machinery.PathFinder.find_spec(parts[0], [str(ROOT), *sys.path])
    for part in parts[1:]:
        if spec is None or not spec.submodule_search_locations:
            return False
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    if spec is None:
        return False
    if spec.submodule_search_locations:
        return importlib.machinery.PathFinder.find_spec("__main__", list(spec.submodule_search_locations)) is not None
    return spec.origin is not None and "__main__" in Path(spec.origin).read_text(encoding="utf-8")


def test_module_runs_tells_runnable_modules_from_others():
    assert module_runs("experiments.run") and module_runs("tdsclip.data")
    assert not module_runs("experiments.rnu") and not module_runs("tdsclip.model")
    assert not module_runs("experiments.spec")  # a module with nothing to run


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_command_named_exists(page):
    text = page.read_text(encoding="utf-8")
    modules = sorted(set(PYTHON_M.findall(text)))
    missing = [f"python -m {name}" for name in modules if not module_runs(name)]
    scripts = sorted(set(BASH_SCRIPT.findall(text)))
    missing += [f"bash {script}" for script in scripts if not (ROOT / script).is_file()]
    assert not missing, f"{_name(page)} names commands that do not exist: {', '.join(missing)}"


def test_the_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in readme and "bash scripts/demo.sh" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_config_key_is_documented():
    missing = [
        f"{section.name}.{key.name}"
        for section in dataclasses.fields(RunConfig)
        for key in dataclasses.fields(type(getattr(RunConfig(), section.name)))
        if not field_docs(type(getattr(RunConfig(), section.name))).get(key.name)
    ]
    assert not missing, f"config keys without a docstring under their field in tdsclip/config.py: {missing}"


def test_the_config_reference_is_current():
    current = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert current == reference(), f"docs/config.md is stale; regenerate it with: {REFERENCE_COMMAND}"


def test_the_reference_command_prints_the_reference():
    result = subprocess.run(
        [sys.executable, "-m", "tdsclip.config", "--reference"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == reference()
    refused = subprocess.run(
        [sys.executable, "-m", "tdsclip.config", "--reference", "optim.lr=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--reference" in refused.stderr
