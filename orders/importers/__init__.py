"""Importers for the orders app's kinds of file (see customers.importers.registry)."""
