"""Sphinx extension: what every page of the book needs beyond the theme.

1. A ``.ipynb`` download button on every executed chapter. sphinx-book-theme offers the executed notebook of a text (MyST) chapter for download only when
a launch service (Binder, JupyterHub, Colab) is configured; this book is read offline and
published without one. Before the theme builds its header buttons (priority 501), this copies
the executed notebook from ``_build/jupyter_execute`` into ``_build/html/_sources`` and names it
in the page context, which is what the theme's ``.ipynb`` button reads. The ``.md`` button is
the theme's own.
2. Each script once. sphinx-thebe's configuration script reaches the page twice (once from the
   extension, once from the theme), and the browser then stops with "Identifier 'THEBE_JS_URL'
   has already been declared".
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def add_notebook_download(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Copy ``<pagename>.ipynb`` next to the page's source and offer it as a download."""
    if "kernelspec" not in app.env.metadata.get(pagename, {}):
        return  # a page without code cells has no notebook
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".ipynb.part")
    shutil.copyfile(executed, partial)
    partial.replace(target)  # never a half-copied notebook in the published site
    context["ipynb_source"] = f"{pagename}.ipynb"


def drop_repeated_scripts(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Keep the first of scripts with the same file and inline body."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for script in context.get("script_files", []):
        # An inline script's file name is None or "" depending on who added it.
        key = (getattr(script, "filename", str(script)) or "", str(getattr(script, "attributes", {}).get("body", "")))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", add_notebook_download, priority=400)
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
