"""marketpulse: real-time market data service."""

__version__ = "0.1.0"
