"""MkDocs hook: the settings reference's table, generated from the settings spec as the site is built.

docs/settings.md holds the marker line ``<!-- settings table -->``; ``on_page_markdown`` puts
``litellm_runner.settings.markdown()`` (one row per ``Setting`` of ``SPEC``: default, control id,
description, expected form) in its place, so the page cannot disagree with the spec. mkdocs.yml
names this file under ``hooks:``; ``make docs`` runs MkDocs from the repository's top level, where
``litellm_runner`` is importable.
"""

from __future__ import annotations

from typing import Any

from mkdocs.exceptions import PluginError

from litellm_runner.settings import markdown

PAGE = "settings.md"
MARKER = "<!-- settings table -->"


def settings_page(text: str) -> str:
    """TEXT (docs/settings.md) with its marker replaced by the table of the settings spec."""
    if text.count(MARKER) != 1:
        raise PluginError(f"docs/{PAGE} must hold the line {MARKER} exactly once (the generated settings table)")
    return text.replace(MARKER, markdown().rstrip("\n"))


def on_page_markdown(text: str, page: Any, **_: Any) -> str:
    """MkDocs event: the settings page gets its table, every other page is left as it is."""
    return settings_page(text) if page.file.src_uri == PAGE else text
