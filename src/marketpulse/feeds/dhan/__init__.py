"""DhanHQ v2: the live market feed (5-level and 20-level depth), REST quotes and charts, and
the scrip master, behind marketpulse's feed contract. See ``docs/brokers/dhan.md``."""
