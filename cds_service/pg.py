"""PostgreSQL helpers shared by the stores that use it (feedback and card ledger, the jti replay cache)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SCHEMA_LOCK = 0x62_70_63_64_73  # the advisory lock key of this service's schema ("bpcds")


def create_schema(conn: Any, statements: Iterable[str]) -> None:
    """Run ``CREATE TABLE IF NOT EXISTS …`` statements once even when several replicas start together.

    PostgreSQL's ``IF NOT EXISTS`` does not hold against a concurrent creation of the same table: the second fails on
    the catalogue's unique index (``pg_type_typname_nsp_index``). The statements run in one transaction under a
    transaction-scoped advisory lock, so concurrent start-ups wait for each other and the later ones find the tables.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in statements:
            conn.execute(statement)
