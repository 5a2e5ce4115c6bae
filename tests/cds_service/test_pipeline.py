"""Generated requests and surprising clinical data never produce a 5xx; every 200 is spec-valid. Hostile peers (a
client's tokens, misbehaving FHIR servers): test_pipeline_hostile_peers.py."""

from __future__ import annotations

import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.schemas import Validators
from tests.conftest import SERVICE, call, hook_request
from tests.factories import KETOROLAC_ORAL, LBP, condition, draft, finding, med_request

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)
fhir_keys = st.sampled_from(
    [
        "resourceType",
        "id",
        "status",
        "code",
        "subject",
        "onsetDateTime",
        "authoredOn",
        "dosageInstruction",
        "dispenseRequest",
        "medicationCodeableConcept",
        "effectiveDateTime",
        "valueQuantity",
        "reasonCode",
        "clinicalStatus",
        "coding",
        "entry",
        "resource",
        "route",
        "timing",
        "repeat",
        "boundsPeriod",
        "valueCodeableConcept",
        "valueBoolean",
        "interpretation",
        "dataAbsentReason",
    ]
)
fhirish = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(fhir_keys, inner, max_size=5)),
    max_leaves=25,
)
resource = st.builds(
    lambda rt, extra: {**extra, "resourceType": rt},
    st.sampled_from(
        [
            "Condition",
            "MedicationRequest",
            "MedicationStatement",
            "MedicationAdministration",
            "Observation",
            "ServiceRequest",
            "Procedure",
            "Patient",
            "Medication",
            "Bundle",
            "Basic",
        ]
    ),
    st.dictionaries(fhir_keys, fhirish, max_size=6),
)
VALIDATORS = Validators()


def _ok(resp):
    assert resp.status_code < 500, resp.get_data(as_text=True)[:300]
    if resp.status_code == 200:
        VALIDATORS.response(resp.get_json())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.dictionaries(
        st.sampled_from(["hook", "hookInstance", "context", "prefetch", "fhirServer", "fhirAuthorization", "x"]),
        json_value,
        max_size=6,
    ),
    service=st.sampled_from(sorted(SERVICE.values())),
)
def test_arbitrary_json_never_5xx(client, body, service):
    _ok(client.post(f"/cds-services/{service}", json=body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    resources=st.lists(resource, max_size=6),
    drafts=st.lists(resource, max_size=3),
    hook=st.sampled_from(["patient-view", "order-select", "order-sign"]),
)
def test_garbage_fhir_in_prefetch_and_drafts_never_5xx(client, resources, drafts, hook):
    episode = condition("lbp", *LBP, onset="2026-11-01")  # a dated back-pain episode: observations are read too
    body = hook_request(
        hook,
        drafts=[{**d, "id": f"d{i}"} for i, d in enumerate(drafts)],
        prefetch={
            "conditions": {"resourceType": "Bundle", "entry": [{"resource": r} for r in [episode, *resources]]},
            "medications": {"resourceType": "Bundle", "entry": resources},
        },
    )
    _ok(call(client, body))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    onset=st.one_of(
        st.none(), st.text(max_size=12), st.sampled_from(["2026-11-22", "2026-02-30", "2026-11", "99999-01-01"])
    ),
    supply=st.one_of(st.none(), st.floats(-10, 10**9, allow_nan=False), st.integers(-5, 10**9)),
    unit=st.sampled_from(["d", "h", "wk", "mo", "a", "min", "s", "days", "", "furlong"]),
)
def test_odd_dates_and_durations_never_5xx(client, onset, supply, unit):
    med = draft("k", *KETOROLAC_ORAL, supply_days=supply, supply_unit=unit)
    cond = condition("c", "279039007", "Low back pain", onset=onset if isinstance(onset, str) else None)
    body = hook_request(
        "order-sign",
        drafts=[med],
        prefetch={
            "conditions": {"resourceType": "Bundle", "entry": [{"resource": cond}]},
            "medications": {"resourceType": "Bundle", "entry": [{"resource": med_request("m", None, "x")}]},
        },
    )
    _ok(call(client, body))


def test_invalid_entry_is_skipped_counted_and_logged_by_type_and_id_only(client, caplog):
    bad = {"resourceType": "Condition", "id": "bad-1", "code": "not-a-concept", "subject": {"reference": "Patient/p1"}}
    other = {"resourceType": "Basic", "id": "b1"}
    with caplog.at_level(logging.INFO, logger="backpain_cds"):
        resp = call(
            client,
            hook_request(
                "patient-view",
                prefetch={"conditions": {"resourceType": "Bundle", "entry": [{"resource": bad}, {"resource": other}]}},
            ),
        )
    assert resp.status_code == 200
    record = next(r for r in caplog.records if r.getMessage() == "hook call")
    assert record.skipped == 1
    assert record.unread_types == ["Basic"]
    skipped = next(r for r in caplog.records if r.getMessage() == "skipped invalid entry")
    assert skipped.resource == "Condition/bad-1"
    assert "not-a-concept" not in caplog.text


def test_the_suite_log_guard_sees_hook_call_lines(client, no_secrets_in_logs):
    before = len(no_secrets_in_logs.lines)
    call(
        client,
        hook_request(
            "patient-view",
            fhirServer="https://ehr.example.org/fhir",
            fhirAuthorization={
                "access_token": "secret-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "cds",
            },
        ),
    )
    new = no_secrets_in_logs.lines[before:]
    assert any('"msg": "hook call"' in line and '"hookInstance"' in line for line in new)


def test_rejected_requests_are_logged_without_their_body(client, caplog):
    body = hook_request("patient-view")
    body["context"].pop("patientId")
    body["prefetch"]["patient"]["name"] = [{"family": "Confidential-Surname"}]
    with caplog.at_level(logging.INFO, logger="backpain_cds"):
        assert call(client, body).status_code == 400
    record = next(r for r in caplog.records if r.getMessage() == "request rejected")
    assert (record.status, record.error, record.field) == (400, "bad-request", "context.patientId")
    assert "Confidential-Surname" not in caplog.text


def _mutations():
    """A valid order-select request with one field (at any depth of the protocol part) replaced by arbitrary JSON."""
    paths = [
        ("hook",),
        ("hookInstance",),
        ("fhirServer",),
        ("fhirAuthorization",),
        ("fhirAuthorization", "token_type"),
        ("fhirAuthorization", "access_token"),
        ("context",),
        ("context", "patientId"),
        ("context", "userId"),
        ("context", "selections"),
        ("context", "draftOrders"),
        ("context", "draftOrders", "entry"),
        ("prefetch",),
        ("prefetch", "patient"),
        ("prefetch", "conditions"),
        ("prefetch", "patient", "resourceType"),
    ]
    return st.tuples(
        st.sampled_from(paths), st.one_of(json_value, st.just(None), st.just("Patient/p1"), st.just([])), st.booleans()
    )


@settings(max_examples=300, deadline=None)
@given(mutation=_mutations())
def test_fast_and_reference_schema_validators_agree(mutation):
    """jsonschema-rs accepts valid bodies on the hot path; jsonschema reports errors. They must never disagree."""
    path, value, delete = mutation
    body = hook_request(
        "order-select",
        drafts=[draft("k", *KETOROLAC_ORAL, supply_days=3)],
        fhirServer="https://ehr.example.org/fhir",
        fhirAuthorization={
            "access_token": "t",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "x",
            "subject": "s",
        },
    )
    target = body
    for key in path[:-1]:
        target = target.get(key) if isinstance(target, dict) else None
    if isinstance(target, dict):
        if delete:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
    schemas = [(VALIDATORS._request, body)]
    if isinstance(body.get("context"), dict):
        schemas.append((VALIDATORS._contexts["order-select"], body["context"]))
    for schema, instance in schemas:
        reference_ok = not any(True for _ in schema.reference.iter_errors(instance))
        assert schema.fast.is_valid(instance) == reference_ok, (path, value, delete)


_V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_interpretation = st.one_of(
    json_value,
    st.lists(
        st.fixed_dictionaries(
            {
                "coding": st.lists(
                    st.fixed_dictionaries(
                        {"system": st.just(_V3), "code": st.sampled_from(["N", "NEG", "ND", "A", "POS", "H"])}
                    ),
                    max_size=2,
                )
            }
        ),
        max_size=2,
    ),
)
_finding_shape = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(
            [
                "final",
                "amended",
                "corrected",
                "preliminary",
                "registered",
                "cancelled",
                "entered-in-error",
                "unknown",
                "FINAL",
                "",
                None,
            ]
        ),
        "valueBoolean": st.sampled_from([True, False, "true", "false", 1, 0, None]),
        "valueString": st.sampled_from(["yes", "no", "absent", ""]),
        "valueQuantity": st.fixed_dictionaries({"value": st.integers(0, 2)}),
        "valueCodeableConcept": json_value,
        "interpretation": _interpretation,
        "dataAbsentReason": json_value,
        "effectiveDateTime": st.sampled_from(
            ["2026-10-31", "2026-11-01", "2026-11-20", "2026-11-22", "2026-11-23", "2026-11", "garbage", None]
        ),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=_finding_shape)
def test_an_observed_red_flag_fires_only_on_a_finding_that_reads_as_present(client, shape):
    """Safety property: whatever the shape, a card built on an Observation never rests on a denied, unread or
    resultless finding, nor on one dated outside the episode (2026-11-01 … today)."""
    obs = {**finding("o1", "267064002", "Retention of urine", "2026-11-20"), **shape}
    if obs.get("effectiveDateTime") is None:
        obs.pop("effectiveDateTime")
    body = hook_request(
        "patient-view",
        prefetch={
            "conditions": {
                "resourceType": "Bundle",
                "entry": [{"resource": condition("lbp", *LBP, onset="2026-11-01")}],
            },
            "findings": {"resourceType": "Bundle", "entry": [{"resource": obs}]},
        },
    )
    resp = call(client, body)
    _ok(resp)
    if not resp.get_json()["cards"]:
        return
    assert obs.get("status") in ("final", "amended", "corrected", "preliminary")
    assert "dataAbsentReason" not in obs
    assert not ({"valueString", "valueQuantity"} & set(obs)) and obs.get("valueBoolean", True) is True
    codes = {
        c.get("code")
        for i in (obs.get("interpretation") if isinstance(obs.get("interpretation"), list) else [])
        if isinstance(i, dict)
        for c in (i.get("coding") or [])
        if isinstance(c, dict)
    }
    assert not codes & {"N", "NEG", "ND"}
    assert obs["effectiveDateTime"] in ("2026-11-01", "2026-11-20", "2026-11-22", "2026-11")
