"""Kizuna: a federated STIX 2.1 / TAXII 2.1 sharing node."""

__version__ = "0.1.0"
