"""`render`: Docs or records -> HTML, as a fragment, a whole page, or shown inline in a notebook."""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

from spacy.util import is_in_jupyter

from .html import Options, doc_html, esc, fragment, index_html, legend_html, page, resolve_options
from .views import DocView, VisualizeError, to_views


def views_html(views: Sequence[DocView], options: Options, *, as_page: bool) -> str:
    """The docs with a legend; a page also gets label switches, a "docs with" filter and an index."""
    body = legend_html(views, options, filters=as_page) if options["legend"] else ""
    if as_page:
        body = f'<h1>{esc(options["title"])}</h1>{body}'
        if len(views) > 1:
            body += index_html(views, range(len(views)))
    docs = "".join(doc_html(view, i, options) for i, view in enumerate(views))
    body += f'<div class="codeie-items">{docs}</div>'
    return page(body, options["title"]) if as_page else fragment(body)


def render(
    docs: Union[Any, Sequence[Any]],
    *,
    page: bool = False,
    jupyter: Optional[bool] = None,
    options: Optional[Mapping[str, Any]] = None,
    spans_key: str = "codeie",
    relations_extension: str = "relations",
    events_extension: str = "events",
) -> Optional[str]:
    """HTML of entities, relation arcs and event frames over the text of each doc, like `displacy.render`.

    `docs`: a Doc or record (a dict in the shared JSONL format), or a list of them. `page`: a whole HTML page
    rather than a fragment to embed. `jupyter`: show the result inline in a notebook and return None (None:
    when running in one). `options`: `colors` (label -> CSS colour), `direction` ("auto", "ltr", "rtl"),
    `title`, `legend`, `details`. The other settings name where the codeie component wrote its output.
    """
    views = to_views(docs, spans_key=spans_key, relations_extension=relations_extension,
                     events_extension=events_extension)
    markup = views_html(views, resolve_options(options), as_page=page)
    if jupyter or (jupyter is None and is_in_jupyter()):
        try:
            from IPython.display import HTML, display
        except ImportError as err:
            raise VisualizeError("jupyter=True needs IPython (pip install ipython), or call render with "
                                 "jupyter=False to get the HTML as a string.") from err
        display(HTML(markup))
        return None
    return markup
