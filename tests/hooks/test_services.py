"""The services' declarations as discovery shows them."""

from __future__ import annotations

from tests.conftest import call, hook_request
from tests.factories import MRI_LUMBAR, service_request


def test_discovery_declares_the_optional_diagnostic_reports_key(http):
    services = http.get("/cds-services").get_json()["services"]
    query = services[0]["prefetch"]["diagnosticReports"]
    assert query.startswith("DiagnosticReport?patient=Patient/{{context.patientId}}&code=")
    assert "http://loinc.org|24968-0" in query and "http://www.ama-assn.org/go/cpt|72148" in query
    assert (
        "http://loinc.org|36670-8" not in query
    )  # radiographs are not fetched (see services._cross_sectional_reports)
    body = hook_request("order-select", drafts=[service_request("mri", *MRI_LUMBAR)])
    del body["prefetch"]["diagnosticReports"]
    assert call(http, body).status_code == 200  # optional: no FHIR server, still answered


def test_service_descriptions_list_what_their_rules_flag(http):
    services = {s["hook"]: s for s in http.get("/cds-services").get_json()["services"]}
    pv = services["patient-view"]["description"]
    assert pv.startswith("Flags: ketorolac past its 5-day combined limit") and "persistent radicular pain" in pv
    assert "two NSAIDs at once" in services["order-sign"]["description"] and "two NSAIDs" not in pv
