"""A Mote process function in Python.

Mote provides the SDK (``import mote``) to deployed functions; mote.json
holds the handler ``python3 -m mote handler.handler``.
"""

import mote  # noqa: F401  (the SDK: mote.kv, mote.invoke, ...)


def handler(event, context):
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"invocation {context.aws_request_id} greets {name}")
    return {"greeting": f"hello, {name}", "version": context.function_version}
