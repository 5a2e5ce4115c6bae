"""backpain-cds clinical content: value sets, thresholds, rules (declared once, hooks/catalogue.py) and the CDS service
definitions; ``hooks.wsgi`` serves them with the protocol layer (``cds_service``)."""

from .engine import Engine, Knowledge
from .services import build_services

__all__ = ["Engine", "Knowledge", "build_services"]
