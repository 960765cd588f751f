"""Every reference-data endpoint is documented: a summary, a response schema, examples."""

from __future__ import annotations

from marketpulse.api.app import create_app
from marketpulse.config import Settings

PREFIXES = ("/api/exchanges", "/api/exchange-providers", "/api/instruments", "/api/providers",
            "/api/sectors")  # fmt: skip
OTHERS = ("/api/instruments/subscribe", "/api/instruments/unsubscribe",
          "/api/instruments/subscriptions")  # fmt: skip


def test_every_reference_endpoint_has_a_summary_and_a_response(settings: Settings) -> None:
    schema = create_app(settings).openapi()
    ours = {
        (path, method): op
        for path, ops in schema["paths"].items()
        if path.startswith(PREFIXES) and not path.startswith(OTHERS)
        for method, op in ops.items()
    }
    assert len(ours) >= 40
    for (path, method), op in ours.items():
        assert op.get("summary"), (path, method)
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert ok, (path, method)
        if ok[0] != "204":
            assert op["responses"][ok[0]].get("content"), (path, method)
    models = schema["components"]["schemas"]
    for name in ("ExchangeIn", "InstrumentIn", "ProviderIn", "SectorIn", "InstrumentOut"):
        props = models[name]["properties"]
        assert any("examples" in p or "anyOf" in p for p in props.values()), name
