"""Draw what codeie extracted: entities (nested ones too), relation arcs and event frames over the text, and
gold-vs-predicted error views. Self-contained HTML: inline CSS and script, nothing loaded from the network."""
from .compare import Case, compare_examples, compare_records, compare_views
from .html import Options
from .render import render
from .report import records_report, report_page
from .serve import make_server, serve
from .views import DocView, VisualizeError, to_views, view_from_doc, view_from_record

__all__ = [
    "Case",
    "DocView",
    "Options",
    "VisualizeError",
    "compare_examples",
    "compare_records",
    "compare_views",
    "make_server",
    "records_report",
    "render",
    "report_page",
    "serve",
    "to_views",
    "view_from_doc",
    "view_from_record",
]
