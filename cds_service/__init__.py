"""backpain-cds protocol layer: an HL7 CDS Hooks 2.0.1 service (discovery, hooks, prefetch, feedback, auth)."""

from .app import create_app
from .config import Settings, load_settings

__all__ = ["Settings", "create_app", "load_settings"]
