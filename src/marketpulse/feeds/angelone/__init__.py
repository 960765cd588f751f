"""Angel One SmartAPI: the WebSocket 2.0 ("smart-stream") feed, REST market data, login.

The wire format (binary packets and JSON text messages) lives in :mod:`.wire` as pure
functions, so the client, the emulator, the tests and the benchmarks share one definition of
every offset and scaling rule (source of truth: ``shared/protocols/angelone.md``). The other
modules and the choices behind them are described in ``docs/brokers/angelone.md``.
"""
