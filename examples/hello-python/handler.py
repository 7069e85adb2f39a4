"""hello-python: a Mote process function in Python.

Mote provides the SDK (``import mote``): deploy this directory alone with the
handler ``python3 -m mote handler.handler`` (see mote.json).
"""

import mote


def handler(event, context):
    name = (event or {}).get("name") if isinstance(event, dict) else None
    if not name:
        raise ValueError("name is required")
    print(f"greeting {name}")
    greeting = f"hello {name}"
    if event.get("store"):
        # A host call: keep the greeting in the "greetings" bucket (the
        # function's config must allow writing it).
        mote.kv.put("greetings", name, greeting)
    return {
        "greeting": greeting,
        "request_id": context.aws_request_id,
        "function": context.function_name,
    }
