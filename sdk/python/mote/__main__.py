"""The process-function bootstrap: ``python3 -m mote module.function``.

The module is imported from the function's directory (the working
directory, also LAMBDA_TASK_ROOT); the function defaults to
``handler.handler``. An import failure is reported as an init error.
"""

import importlib
import os
import sys

import mote


def main(argv):
    spec = argv[1] if len(argv) > 1 else "handler.handler"
    module_name, _, func_name = spec.rpartition(".")
    if not module_name:
        module_name, func_name = spec, "handler"
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
        handler = getattr(module, func_name)
    except Exception as exc:  # any failure to load is the function's init error
        mote.init_error(exc)
    mote.start(handler)


if __name__ == "__main__":
    main(sys.argv)
