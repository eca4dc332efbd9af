"""The host: app factory, database, identity and access, org units, feed, events, the web shell and CLI."""

__version__ = "0.1.0"
