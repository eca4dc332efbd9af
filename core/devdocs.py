"""``superapp docs build``: the developer docs (docs/*.md and the README) as static HTML pages.

Links between the Markdown files become links between the pages, headings get the same anchors as on
a code forge (so ``hooks.md#superapp_register_routes`` works in both), and code blocks are kept as
they are. The pages need no server: open ``index.html`` or publish the folder.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Hue super-app developer docs</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}}
pre{{background:#f5f5f5;padding:.75rem;overflow:auto}}code{{font-size:.9em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}}nav a{{margin-right:1rem}}</style>
</head><body><nav>{nav}</nav><main>{body}</main></body></html>
"""


def _anchor(text: str) -> str:
    """The anchor a code forge gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


def _link(href: str) -> str:
    """``hooks.md#x`` -> ``hooks.html#x``; the README and links outside docs/ point into the pages or stay."""
    if re.match(r"^[a-z]+:", href) or href.startswith("#"):
        return href
    path, _, fragment = href.partition("#")
    name = Path(path).name
    if name.endswith(".md"):
        target = "index.html" if name == "README.md" else name[:-3] + ".html"
        return target + (f"#{fragment}" if fragment else "")
    return href


def render(markdown: str) -> str:
    """One Markdown document as HTML, with anchored headings and page links."""
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(markdown)
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            inline = tokens[index + 1]
            token.attrSet("id", _anchor(inline.content))
        if token.type == "inline":
            for child in token.children or []:
                if child.type == "link_open":
                    child.attrSet("href", _link(str(child.attrGet("href") or "")))
    return md.renderer.render(tokens, md.options, {})


def build(out: Path, *, docs: Path = ROOT / "docs", readme: Path = ROOT / "README.md") -> list[Path]:
    """Write one page per document (the README as index.html) into ``out``; returns the pages."""
    if not docs.is_dir():
        raise FileNotFoundError(f"{docs} not found: build the docs from a clone of the repository")
    sources = [readme, *sorted(docs.glob("*.md"))]
    out.mkdir(parents=True, exist_ok=True)
    names = {src: ("index" if src == readme else src.stem) for src in sources}
    nav = " ".join(f'<a href="{name}.html">{html.escape(name)}</a>' for name in names.values())
    pages = []
    for src, name in names.items():
        text = src.read_text(encoding="utf-8")
        title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), name)
        page = out / f"{name}.html"
        page.write_text(PAGE.format(title=html.escape(title), nav=nav, body=render(text)), encoding="utf-8")
        pages.append(page)
    # Files the documents link to (the manifest's JSON Schema) go beside the pages, so the links work.
    for other in sorted(p for p in docs.iterdir() if p.is_file() and p.suffix != ".md"):
        shutil.copyfile(other, out / other.name)
    return pages
