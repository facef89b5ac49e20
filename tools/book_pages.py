"""Sphinx extension: what every page of the book needs beyond the theme.

1. A ``.ipynb`` download button on every executed chapter. sphinx-book-theme offers the executed
   notebook of a text (MyST) chapter for download only when a launch service (Binder, JupyterHub,
   Colab) is configured; this book is read offline and published without one. Before the theme
   builds its header buttons (priority 501), this writes the executed notebook -- the chapter
   merged with its entry in the build's notebook cache, as the page shows it -- into
   ``_build/html/_sources`` and names it in the page context, which is what the theme's
   ``.ipynb`` button reads. The ``.md`` button is the theme's own.
2. Each script once. sphinx-thebe's configuration script reaches the page twice (once from the
   extension, once from the theme), and the browser then stops with "Identifier 'THEBE_JS_URL'
   has already been declared".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def executed_notebook(app: Any, pagename: str) -> str | None:
    """The page's executed notebook as JSON text: the build's notebook cache merged into the chapter
    (what the page shows), else the copy in ``_build/jupyter_execute``."""
    import nbformat
    from jupyter_cache import get_cache
    from myst_nb.core.read import read_myst_markdown_notebook

    source = Path(app.env.doc2path(pagename))
    cache_path = app.config.nb_execution_cache_path or str(Path(app.outdir).parent / ".jupyter_cache")
    if source.suffix == ".md" and Path(cache_path).is_dir():
        notebook = read_myst_markdown_notebook(source.read_text(encoding="utf-8"), path=str(source))
        try:
            _, merged = get_cache(cache_path).merge_match_into_notebook(notebook)
            return nbformat.writes(merged)
        except KeyError:
            pass  # not in the cache: executed without it, or not executed
    # With a cached chapter MyST-NB writes this copy without outputs, hence the cache first.
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    return executed.read_text(encoding="utf-8") if executed.is_file() else None


def add_notebook_download(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Write ``<pagename>.ipynb`` next to the page's source and offer it as a download."""
    if "kernelspec" not in app.env.metadata.get(pagename, {}):
        return  # a page without code cells has no notebook
    text = executed_notebook(app, pagename)
    if text is None:
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".ipynb.part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)  # never a half-written notebook in the published site
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
