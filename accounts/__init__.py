"""Managed accounts for Django: a double-entry ledger behind a small facade."""

__version__ = "0.1.0"
