"""Run the official ``SmartWebSocketV2`` client against a URL; print what it receives as JSON lines.

    python sdk_client.py URL JWT API_KEY CLIENT_CODE FEED_TOKEN MODE TOKEN_LIST_JSON COUNT

Loaded by the spec's offline recipe (``shared/protocols/angelone.md`` §7): the module file only,
so ``SmartApi/__init__``'s network call never runs. The client is constructed normally (it makes
a ``logs/`` folder, so run this from a temporary directory), its ``ROOT_URI`` is pointed at the
emulator, and after COUNT data callbacks the process exits (the SDK's own close path reconnects).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Any


def load_client_class() -> Any:
    spec = importlib.util.find_spec("SmartApi")  # does not execute SmartApi/__init__.py
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("smartapi-python is not installed in this interpreter")
    path = os.path.join(next(iter(spec.submodule_search_locations)), "smartWebSocketV2.py")
    module_spec = importlib.util.spec_from_file_location("_angel_sws2_client", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SmartWebSocketV2


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main() -> None:
    url, jwt, api_key, client_code, feed_token, mode, token_list, count = sys.argv[1:9]
    client = load_client_class()(jwt, api_key, client_code, feed_token)
    client.ROOT_URI = url
    wanted = int(count)
    seen = 0

    def on_open(_wsapp: Any) -> None:
        emit("open")
        client.subscribe("mp1", int(mode), json.loads(token_list))

    def on_data(_wsapp: Any, data: dict[str, Any]) -> None:
        nonlocal seen
        emit("data", data=data)
        seen += 1
        if seen >= wanted:
            os._exit(0)

    def on_error(*args: Any) -> None:
        emit("error", args=[str(a) for a in args])

    client.on_open = on_open
    client.on_data = on_data
    client.on_error = on_error
    client.on_close = lambda *_: emit("close")
    client.connect()  # blocks in websocket-client's run_forever


if __name__ == "__main__":
    main()
