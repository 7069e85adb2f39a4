"""Serve a WSGI application (PEP 3333) as an HTTP function.

A function deployed with ``"http": true`` gets each request as the AWS
Lambda payload format 2.0 event (a dict) and may answer a 2.0 response
dict itself. To run a WSGI app instead (Flask, Bottle, a hand-written
one)::

    from mote.wsgi import handler_for
    from myapp import app
    handler = handler_for(app)

and deploy with the handler ``python3 -m mote handler.handler``. A
response of type ``text/event-stream`` is streamed on Mote: each item the
app's iterable yields reaches the client at once (posted over the Runtime
API in Lambda's streaming mode); any other is collected whole, then sent.
"""

import base64
import http.client
import io
import json
import os
import sys

import mote

__all__ = ["handler_for", "environ_from_event", "response_to_v2"]


def environ_from_event(event):
    """The WSGI environ for a payload format 2.0 event."""
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    headers = event.get("headers") or {}
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(body)
    else:
        raw = body.encode("utf-8")
    host = headers.get("host") or ctx.get("domainName") or "localhost"
    name, _, port = host.partition(":")
    scheme = headers.get("x-forwarded-proto", "http")
    environ = {
        "REQUEST_METHOD": (http.get("method") or "GET").upper(),
        "SCRIPT_NAME": headers.get("x-forwarded-prefix", ""),
        "PATH_INFO": event.get("rawPath") or "/",
        "QUERY_STRING": event.get("rawQueryString") or "",
        "SERVER_NAME": name,
        "SERVER_PORT": port or ("443" if scheme == "https" else "80"),
        "SERVER_PROTOCOL": http.get("protocol") or "HTTP/1.1",
        "REMOTE_ADDR": http.get("sourceIp") or "",
        "CONTENT_LENGTH": str(len(raw)),
        "CONTENT_TYPE": headers.get("content-type", ""),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for key, value in headers.items():
        k = key.upper().replace("-", "_")
        if k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            continue
        environ["HTTP_" + k] = value
    cookies = event.get("cookies")
    if cookies:
        environ["HTTP_COOKIE"] = "; ".join(cookies)
    return environ


def response_to_v2(status, headers, body):
    """A payload format 2.0 response from a WSGI status line, header list
    and body bytes."""
    out_headers, cookies = {}, []
    for k, v in headers:
        if k.lower() == "set-cookie":
            cookies.append(v)
        elif k in out_headers:
            out_headers[k] += ", " + v
        else:
            out_headers[k] = v
    try:
        text, b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, b64 = base64.b64encode(body).decode("ascii"), True
    return {
        "statusCode": int(status.split(" ", 1)[0]),
        "headers": out_headers,
        "cookies": cookies,
        "body": text,
        "isBase64Encoded": b64,
    }


def handler_for(app):
    """A Mote handler that serves the WSGI application ``app``."""

    def handler(event, context):
        started = {}

        def start_response(status, headers, exc_info=None):
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started["status"], started["headers"] = status, headers
            return lambda data: chunks.append(data)

        chunks = []
        result = app(environ_from_event(event), start_response)
        ctype = dict((k.lower(), v) for k, v in started.get("headers", [])).get("content-type", "")
        if (ctype.startswith("text/event-stream") and os.environ.get("MOTE_INSTANCE")
                and getattr(context, "aws_request_id", "")):
            _stream(context.aws_request_id, started["status"], started["headers"], chunks, result)
            return mote.STREAMED
        try:
            for chunk in result:
                chunks.append(chunk)
        finally:
            if hasattr(result, "close"):
                result.close()
        if not started:
            raise RuntimeError("the WSGI app returned without calling start_response")
        return response_to_v2(started["status"], started["headers"], b"".join(chunks))

    return handler


def _stream(request_id, status, headers, written, result):
    """Posts a response over the Runtime API in Lambda's streaming mode: a
    JSON prelude (status, headers, cookies), eight NUL bytes, then each
    chunk of the body as the app yields it."""
    v2 = response_to_v2(status, headers, b"")
    prelude = json.dumps({"statusCode": v2["statusCode"], "headers": v2["headers"],
                          "cookies": v2["cookies"]}).encode() + b"\0" * 8

    def body():
        yield prelude
        yield from (c for c in written if c)
        try:
            for chunk in result:
                if chunk:
                    yield chunk
        finally:
            if hasattr(result, "close"):
                result.close()

    host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rpartition(":")
    conn = http.client.HTTPConnection(host, int(port))
    try:
        conn.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body=body(),
                     headers={"Content-Type": "application/vnd.awslambda.http-integration-response",
                              "Lambda-Runtime-Function-Response-Mode": "streaming"},
                     encode_chunked=True)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 202:
            raise RuntimeError(f"streamed response refused: {resp.status}")
    finally:
        conn.close()
