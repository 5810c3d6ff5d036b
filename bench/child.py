"""One run of one case, in its own interpreter: ``python -m bench.child MODULE:FUNC PARAMS``.

Prints the case's result as one JSON line, last on stdout.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys

from stepline.engine.tuning import tune_garbage_collector


def main() -> None:
    call, raw = sys.argv[1], sys.argv[2]
    module_name, function_name = call.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    logging.basicConfig(level=logging.WARNING)
    # A benchmark process is one Stepline owns, as `stepline serve` and `stepline worker`
    # are: tune the collector the same way (the peer's runs get the same setting).
    tune_garbage_collector()
    result = asyncio.run(function(**json.loads(raw)))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
