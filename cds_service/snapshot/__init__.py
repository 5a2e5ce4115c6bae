"""PatientSnapshot: frozen, normalised facts read from the resolved prefetch and the draft orders.

By resource type: ``medications`` (routes, doses, dates), ``conditions`` (and allergies), ``observations``, ``orders``;
``facts`` holds the records, ``reader`` the reading, ``fields`` the liberal JSON access.

Facts are extracted from plain JSON, one entry at a time (no whole-Bundle model validation: one bad entry
only skips itself, counted by type). Entries for another patient are ignored. Nothing here knows about back
pain: every fact carries the value sets it belongs to, and the clinical rules (``hooks``) interpret them.
Reads R4 shapes, and the DSTU2/STU3 ``MedicationOrder`` (``dateWritten``) that older servers return.
"""

from .facts import AllergyFact, ConditionFact, MedicationCourse, ObservationFact, OrderFact, PatientSnapshot
from .fields import iter_resources
from .reader import SnapshotReader, build_snapshot

__all__ = [
    "AllergyFact",
    "ConditionFact",
    "MedicationCourse",
    "ObservationFact",
    "OrderFact",
    "PatientSnapshot",
    "SnapshotReader",
    "build_snapshot",
    "iter_resources",
]
