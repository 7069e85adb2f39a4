"""hello-python: a Mote process function in Python.

Deploy this directory with the handler ``python3 -m mote handler.handler``
(the SDK in sdk/python must be importable: copy its ``mote`` package next
to this file, or set PYTHONPATH in the function's environment).
"""

import mote


def handler(event, context):
    name = (event or {}).get("name") if isinstance(event, dict) else None
    if not name:
        raise ValueError("name is required")
    print(f"greeting {name}")
    greeting = f"hello {name}"
    if event.get("store"):
        # A host call: keep the greeting in the function's KV store.
        mote.call("kv.put", name, greeting)
    return {
        "greeting": greeting,
        "request_id": context.aws_request_id,
        "function": context.function_name,
    }
