"""Zerodha Kite Connect ("KiteTicker" v3) feed.

Pure codecs — ``wire`` (binary frames and JSON messages) and ``instruments`` (the instrument
dump) — are shared with the emulator; I/O stays at the edges: ``client`` (the ticker WebSocket),
``rest`` (quotes, candles, dump), ``auth`` (``marketpulse login kite``), ``credentials`` and
``feed`` (the registry's ``SPEC``). The protocol facts come from ``shared/protocols/kite.md``;
set-up, limits and choices are in ``docs/brokers/kite.md``, the codec's in
``docs/brokers/kite-wire.md``.
"""
