"""hello-wsgi: a plain WSGI application served as a Mote HTTP function.

Deploy this directory (see mote.json: "http": true) and route to it:

    mote deploy hello-wsgi examples/hello-wsgi
    mote route add '/wsgi/*' hello-wsgi --public
    curl -i localhost:8080/wsgi/hello?name=ada
"""

import json
import time
from urllib.parse import parse_qs

from mote.wsgi import handler_for


def app(environ, start_response):
    query = parse_qs(environ["QUERY_STRING"])
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length).decode()
    if environ["PATH_INFO"] == "/events":
        # Server-sent events, streamed: each reaches the client when yielded.
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return events()
    if environ["PATH_INFO"] == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"nothing here"]
    start_response("200 OK", [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ])
    return [json.dumps({
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "name": query.get("name", [""])[0],
        "body": body,
        "agent": environ.get("HTTP_USER_AGENT", ""),
    }).encode()]


def events():
    yield b"data: 1\n\n"
    time.sleep(1.5)  # the work the next event reports on
    yield b"data: 2\n\n"


handler = handler_for(app)
