"""The docs a newcomer reads: a short README with the two commands, every page of docs/ reachable from
it, every relative link resolving to a file, and a settings reference generated from the settings spec."""

import importlib.util
import re
from pathlib import Path

import pytest
from mkdocs.exceptions import PluginError

from litellm_runner.settings import SPEC, markdown
from tests.unit.group_data import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
FENCE = re.compile(r"^```.*?^```", re.M | re.S)  # fenced code: its brackets are not links
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target)


def relative_links(page: Path) -> list[str]:
    """The targets of PAGE's relative links (no URL, no anchor inside the page), without their anchors."""
    text = CODE.sub("", FENCE.sub("", page.read_text()))
    targets = [t.split("#")[0] for t in LINK.findall(text) if "://" not in t and not t.startswith(("#", "mailto:"))]
    return [t for t in targets if t]


def broken_links(page: Path) -> list[str]:
    return [t for t in relative_links(page) if not (page.parent / t).is_file()]


def linked_from(page: Path) -> set[Path]:
    """The files PAGE's relative links point at."""
    return {(page.parent / t).resolve() for t in relative_links(page)}


def reachable() -> set[Path]:
    """The pages a README reader reaches in one step: README's links, and docs/index.md's when README links it."""
    pages = linked_from(README)
    index = (DOCS / "index.md").resolve()
    return pages | linked_from(index) if index in pages else pages


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def hook():
    """docs/hooks/settings_table.py, the MkDocs hook mkdocs.yml names, loaded as MkDocs loads it."""
    spec = importlib.util.spec_from_file_location("settings_table", DOCS / "hooks" / "settings_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_short_and_gives_the_two_commands():
    size = len(README.read_bytes())
    assert size < 10_500, f"README.md is {size} bytes: move detail into docs/"
    text = README.read_text()
    assert "make converge" in text and "make test" in text


def test_every_docs_page_is_reachable_from_the_readme():
    assert pages(), "docs/ has no page"
    lost = [str(p.relative_to(REPO)) for p in pages() if p.resolve() not in reachable()]
    assert lost == [], f"not linked from README.md or docs/index.md: {lost}"


@pytest.mark.parametrize("page", [README, *pages()], ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == [], f"{page.relative_to(REPO)} links to files that do not exist"


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("# there\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#top) [gone](gone.md) [web](https://example.net/x.md) `[code](no.md)`\n")
    assert broken_links(page) == ["gone.md"]
    assert linked_from(page) == {(tmp_path / "there.md").resolve(), (tmp_path / "gone.md").resolve()}


def test_the_settings_page_is_generated_from_the_spec():
    page = hook().settings_page((DOCS / "settings.md").read_text())
    assert markdown().rstrip("\n") in page
    missing = [s.name for s in SPEC if f"| `{s.name}` |" not in page]
    assert missing == [], f"the settings reference does not name {missing}"


def test_the_settings_page_without_its_marker_is_refused():
    with pytest.raises(PluginError, match="settings table"):
        hook().settings_page("# Settings reference\n")
