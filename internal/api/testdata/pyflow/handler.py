"""A Python function that composes wasm functions through the flow API."""

import mote


def handler(event, context):
    one = mote.invoke("echo", "echo:sync").decode()
    mapped = [r.output.decode() for r in mote.map("echo", ["echo:m0", "echo:m1", "echo:m2"])]
    handles = [mote.invoke_async("echo", "echo:a%d" % i) for i in range(2)]
    awaited = [r.output.decode() for r in mote.await_all(handles, timeout=5)]
    try:
        mote.invoke("echo", "fail:boom")
        failed = "no error"
    except mote.MoteError as e:
        failed = e.code
    return {"sync": one, "map": mapped, "async": awaited, "failed": failed}
