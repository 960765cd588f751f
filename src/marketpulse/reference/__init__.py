"""Reference data behind the admin REST API: exchanges (hours, holidays, special sessions),
instruments (search, provider mappings, sectors), providers and instrument-master sync jobs.

``models`` maps the tables (the schema belongs to migration 0004 and earlier); the other
modules are repository functions on an ``AsyncSession`` that raise the errors in ``errors``.
"""
