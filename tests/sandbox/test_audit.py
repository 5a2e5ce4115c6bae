"""The population audit on a real local Dask cluster, checked against the in-process replay of the same export.

The export: 57 generated patients (make-population) and three written here by hand — red-flag urinary retention with
back pain, ketorolac on day 11 with the order still active, and a patient on lisinopril only — 60 in all.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from sandbox.make_population import write_population
from sandbox.population import index_export, partitions, read_partition
from sandbox.replay import build_request, ndjson_patients, prefetch_for, today_start
from tests.factories import ICD10, KETOROLAC_ORAL, LBP, condition, med_request

TODAY = date(2026, 11, 22)
PATIENTS, PARTITION = 60, 25
HAND = ("hand-retention", "hand-ketorolac", "hand-quiet")
TIMEOUT = 300  # seconds: the whole audit, cluster start and stop included


def _append(directory: Path, rtype: str, rows: list[dict[str, Any]]) -> None:
    with (directory / f"{rtype}.ndjson").open("a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("export")
    write_population(directory, PATIENTS - len(HAND), seed=7, today=TODAY)
    _append(
        directory,
        "Patient",
        [{"resourceType": "Patient", "id": pid, "birthDate": "1970-06-01", "gender": "female"} for pid in HAND],
    )
    _append(
        directory,
        "Condition",
        [
            condition("hr-c1", *LBP, onset="2026-11-01", pid="hand-retention"),
            condition("hr-c2", "R33.9", "Retention of urine", system=ICD10, onset="2026-11-20", pid="hand-retention"),
            condition("hk-c1", *LBP, onset="2026-11-10", pid="hand-ketorolac"),
        ],
    )
    ketorolac = med_request(
        "hk-m1", *KETOROLAC_ORAL, authored="2026-11-12", route="oral", dose_mg=10, per_day=4, supply_days=10
    )
    ketorolac["subject"] = {"reference": "Patient/hand-ketorolac"}
    lisinopril = med_request("hq-m1", "314076", "lisinopril 10 MG Oral Tablet", authored="2026-01-01", pid="hand-quiet")
    _append(directory, "MedicationRequest", [ketorolac, lisinopril])
    return directory


@pytest.fixture(scope="module")
def audited(export: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One command, no set-up: the default LocalCluster (2 worker processes), closed when the command ends."""
    out = tmp_path_factory.mktemp("audit-out")
    args = ["audit", str(export), "--out", str(out), "--workers", "2", "--today", TODAY.isoformat()]
    run = subprocess.run(
        [sys.executable, "-m", "hooks.cli", *args, "--partition-size", str(PARTITION)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((out / "counts.json").read_text()), out


def _in_process(export: Path) -> tuple[Counter[str], Counter[str], dict[str, set[str]]]:
    """The independent path: the whole export in one process (replay.ndjson_patients), each patient and each active
    order sent to one in-process service with replay's request builder."""
    from sandbox.cli import _services, local_sender

    now = today_start(TODAY)
    send, discovery = local_sender(now)
    services = _services(discovery)
    view, sign = Counter[str](), Counter[str]()
    topics: dict[str, set[str]] = {}
    for pid, resources in ndjson_patients(export).items():
        calls = [("patient-view", prefetch_for(services["patient-view"][1], resources, pid), [])]
        for r in resources:
            if r["resourceType"] in ("MedicationRequest", "ServiceRequest") and r.get("status") == "active":
                others = [o for o in resources if o is not r]
                calls.append(
                    ("order-sign", prefetch_for(services["order-sign"][1], others, pid), [{**r, "status": "draft"}])
                )
        for hook, prefetch, drafts in calls:
            status, data = send(
                services[hook][0], build_request(hook, pid, {"draftOrders": drafts}, prefetch, None, now)
            )
            assert status == 200, data
            for card in data["cards"]:
                topic = card["source"]["topic"]["code"]
                (view if hook == "patient-view" else sign)[f"{topic} ({card['indicator']})"] += 1
                topics.setdefault(topic, set()).add(pid)
    return view, sign, topics


@pytest.mark.slow
def test_the_audit_counts_equal_the_in_process_replay(export: Path, audited: tuple[dict[str, Any], Path]) -> None:
    counts, _ = audited
    view, sign, topics = _in_process(export)
    assert counts["patients"] == PATIENTS and counts["errors"] == 0
    assert counts["by_hook_topic_indicator"] == {"order-sign": dict(sign), "patient-view": dict(view)}
    assert counts["by_topic_indicator"] == dict(view + sign)
    assert counts["by_topic"] == {t: sum(n for k, n in (view + sign).items() if k.startswith(f"{t} (")) for t in topics}
    assert counts["patients_by_topic"] == {t: sorted(ids) for t, ids in topics.items()}
    assert sum(counts["by_month"].values()) == sum(counts["by_age_band"].values()) == counts["cards"]
    assert counts["calls"]["order-sign"] > 0 and sign  # the generated population has orders that fire at sign


@pytest.mark.slow
def test_the_existing_ndjson_replay_agrees_on_patient_view(export: Path, audited: tuple[dict[str, Any], Path]) -> None:
    replay = subprocess.run(
        [sys.executable, "-m", "hooks.cli", "replay", str(export), "--json", "--today", TODAY.isoformat()],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert replay.returncode == 0, replay.stderr[-2000:]
    result = json.loads(replay.stdout)
    assert result["patients"] == audited[0]["patients"]
    assert result["cards"] == audited[0]["by_hook_topic_indicator"]["patient-view"]


@pytest.mark.slow
def test_the_patients_behind_a_topic_are_the_right_ones(audited: tuple[dict[str, Any], Path]) -> None:
    behind = audited[0]["patients_by_topic"]
    assert "hand-retention" in behind["imaging-red-flags"]
    assert "hand-ketorolac" in behind["ketorolac-duration"]
    assert not any("hand-quiet" in ids for ids in behind.values())
    assert "hand-ketorolac" not in behind["imaging-red-flags"]
    assert audited[0]["by_month"].get("2026-11", 0) >= 2  # retention recorded, ketorolac ordered in November
    assert audited[0]["by_age_band"].get("40–64", 0) >= 2  # born 1970-06-01: 56 on 2026-11-22


@pytest.mark.slow
def test_one_task_per_partition_of_at_most_k_patients(audited: tuple[dict[str, Any], Path]) -> None:
    counts = audited[0]
    assert counts["tasks"] == math.ceil(PATIENTS / PARTITION) == 3
    assert counts["largest_partition"] == PARTITION and counts["partition_size"] == PARTITION
    assert counts["workers"] == 2 and counts["scheduler"] == "LocalCluster"


@pytest.mark.slow
def test_the_report_is_self_contained_with_a_plot_each(audited: tuple[dict[str, Any], Path]) -> None:
    page = (audited[1] / "report.html").read_text()
    assert page.count("<svg") == 3  # by topic, by month, by age band
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    assert "imaging-red-flags" in page and "hand-retention" not in page  # ids stay in counts.json


@pytest.mark.slow
def test_scheduler_connects_to_an_externally_started_cluster(
    export: Path, audited: tuple[dict[str, Any], Path]
) -> None:
    from dask.distributed import LocalCluster

    from sandbox.audit import run_audit

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        run = run_audit(export, scheduler=cluster.scheduler_address, today=TODAY, partition_size=20)
        assert run.scheduler == cluster.scheduler_address
        assert len(cluster.workers) == 2  # the audit used the cluster and left it running for its owner
    assert run.tasks == 3 and run.workers == 2
    summary = run.tally.summary()
    assert summary["by_topic_indicator"] == audited[0]["by_topic_indicator"]
    assert summary["patients_by_topic"] == audited[0]["patients_by_topic"]


def test_partitions_read_back_exactly_the_patients_resources(export: Path) -> None:
    index = index_export(export)
    chunks = partitions(index, 7)
    assert len(chunks) == math.ceil(PATIENTS / 7) and max(len(c) for c in chunks) == 7
    streamed = {pid: resources for chunk in chunks for pid, resources in read_partition(index.files, chunk)}
    whole = ndjson_patients(export)
    assert sorted(streamed) == sorted(whole) and len(streamed) == PATIENTS
    assert all(streamed[pid] == whole[pid] for pid in whole)  # same resources, same order (file, then line)


def test_make_population_is_seeded_and_renames_every_reference(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    write_population(one, 20, seed=3, today=TODAY)
    write_population(two, 20, seed=3, today=TODAY)
    assert {p.name: p.read_text() for p in one.iterdir()} == {p.name: p.read_text() for p in two.iterdir()}
    patients = ndjson_patients(one)
    assert sorted(patients) == [f"pop{n:06d}" for n in range(1, 21)]
    for pid, resources in patients.items():
        ids = {f"{r['resourceType']}/{r['id']}" for r in resources}
        text = json.dumps(resources)
        assert all(r["id"] == pid or r["id"].startswith(f"{pid}-") for r in resources)
        assert "Patient/bp" not in text and '"@today' not in text and '"@now' not in text
        refs = [v for r in resources for v in _references(r)]
        assert all(ref in ids or ref == f"Patient/{pid}" for ref in refs), (pid, refs)


def _references(value: Any) -> list[str]:
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    if isinstance(value, dict):
        own = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return own + [r for v in value.values() for r in _references(v)]
    return []


def test_an_unreadable_line_or_a_failing_patient_is_counted_and_the_audit_goes_on(tmp_path: Path, monkeypatch) -> None:
    """A line that is not JSON is skipped at indexing (counted); a patient whose evaluation raises is one error in its
    partition's tally, and the other patients of the partition are still counted."""
    from sandbox import audit
    from sandbox.population import Tally

    write_population(tmp_path, 6, seed=1, today=TODAY)
    with open(tmp_path / "Condition.ndjson", "ab") as fh:
        fh.write(b'{"resourceType": "Condition", "subject": \n')  # a truncated line
    index = index_export(tmp_path)
    assert index.unreadable == 1 and index.patients == 6
    (chunk,) = partitions(index, 10)
    broken = chunk[2][0]
    real = Tally.add_patient

    def add_patient(self: Tally, pid: str, *args: Any) -> None:
        if pid == broken:
            raise KeyError("surprising record")
        real(self, pid, *args)

    monkeypatch.setattr(Tally, "add_patient", add_patient)
    tally = audit.audit_partition(index.files, chunk, today_start(TODAY).isoformat())
    assert tally.errors == 1 and tally.patients == 5
