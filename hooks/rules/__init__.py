"""Rules grouped by topic; each is a pure function RuleContext → list[Finding] with a When/Then docstring, declared
once with ``catalogue.rule``. ``MODULES`` is the catalogue's order: the required rules first, then the further ones."""

from . import adjuvants, analgesics, imaging, ketorolac, red_flags, steroids

MODULES = ("ketorolac", "steroids", "red_flags", "imaging", "analgesics", "adjuvants")

__all__ = ["MODULES", "adjuvants", "analgesics", "imaging", "ketorolac", "red_flags", "steroids"]
