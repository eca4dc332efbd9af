"""``superapp docs build``: every document becomes a page, and every link between pages lands on an anchor."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from core.cli import main
from core.devdocs import ROOT


def test_docs_build_renders_every_document_with_working_links(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["docs", "build", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    expected = {"index.html"} | {p.stem + ".html" for p in (ROOT / "docs").glob("*.md")} | {"manifest.schema.json"}
    assert {p.name for p in tmp_path.iterdir()} == expected
    hooks = (tmp_path / "hooks.html").read_text()
    assert 'id="superapp_register_routes"' in hooks and "<table>" in (tmp_path / "miniapps.html").read_text()
    broken = []
    for page in tmp_path.glob("*.html"):
        for href in re.findall(r'href="([^"]+)"', page.read_text()):
            target, _, anchor = href.partition("#")
            if re.match(r"^[a-z]+:", href) or target.startswith(".."):
                continue  # outside the docs: the web, or files of the repository
            html = (tmp_path / target).read_text() if target else page.read_text()
            if anchor and f'id="{anchor}"' not in html:
                broken.append(f"{page.name}: {href}")
    assert not broken, f"links to missing anchors: {broken}"
