"""backpain-cds clinical content: value sets, thresholds, rules and the CDS service definitions."""

from .engine import Knowledge
from .services import build_services

__all__ = ["Knowledge", "build_services"]
