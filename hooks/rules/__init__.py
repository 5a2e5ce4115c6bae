"""Rules grouped by topic; each is a pure function RuleContext → list[Finding] with a When/Then docstring."""
