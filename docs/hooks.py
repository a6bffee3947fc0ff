"""MkDocs hook: the committed figures (results/figures/*.png) in the site, so that a page links them as the README does.

A page writes ``![...](../results/figures/NAME.png)``, which works where the Markdown is read on its own (a repository
browser); the site gets each figure as ``figures/NAME.png`` and the links are rewritten to it.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

RESULTS = Path(__file__).resolve().parents[1] / "results"


def on_files(files, config):  # noqa: ANN001, ANN201 (MkDocs' hook signature)
    for png in sorted((RESULTS / "figures").glob("*.png")):
        files.append(File(f"figures/{png.name}", src_dir=str(RESULTS), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):  # noqa: ANN001, ANN201
    depth = page.file.src_uri.count("/")
    return re.sub(r"\]\((?:\.\./)+results/figures/", "](" + "../" * depth + "figures/", markdown)
