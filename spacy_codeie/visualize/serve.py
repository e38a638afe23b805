"""`serve`: the rendered page on a small local web server, like `displacy.serve`."""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from wsgiref.simple_server import WSGIServer
from wsgiref.simple_server import make_server as wsgi_server

from .render import render


def page_app(markup: str) -> Callable[[dict, Callable], Iterable[bytes]]:
    """A WSGI app answering every GET with the page."""
    body = markup.encode("utf8")

    def app(environ: dict, start_response: Callable[[str, List[Tuple[str, str]]], Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def make_server(markup: str, host: str = "127.0.0.1", port: int = 5000) -> WSGIServer:
    """The server `serve` runs (port 0: any free port; read it from `server.server_port`)."""
    return wsgi_server(host, port, page_app(markup))


def serve(
    docs: Union[Any, Sequence[Any]],
    *,
    port: int = 5000,
    host: str = "127.0.0.1",
    options: Optional[Mapping[str, Any]] = None,
    spans_key: str = "codeie",
    relations_extension: str = "relations",
    events_extension: str = "events",
) -> None:
    """Serve the page of `docs` until interrupted (Ctrl+C). Only this machine can connect unless `host` is
    "0.0.0.0": the page holds your texts."""
    markup = render(docs, page=True, jupyter=False, options=options, spans_key=spans_key,
                    relations_extension=relations_extension, events_extension=events_extension)
    assert markup is not None
    with make_server(markup, host, port) as httpd:
        print(f"Serving the codeie view on http://{host}:{httpd.server_port} (Ctrl+C to stop)", file=sys.stderr)
        try:
            httpd.serve_forever()
        except KeyboardInterrupt:
            print("Stopped the codeie view server.", file=sys.stderr)
