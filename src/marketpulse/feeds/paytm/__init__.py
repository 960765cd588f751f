"""Paytm Money Open API: live market data (binary WebSocket broadcast), live price REST, login."""
