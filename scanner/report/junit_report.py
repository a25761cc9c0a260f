"""``junit.xml``: one test case per phone for CI systems that show JUnit results.

NOT_READY is a failure (its blockers as the message), UNKNOWN is skipped (the missing evidence as
the reason), READY passes. Cluster findings of severity BLOCKER are failures of a "clusters" suite.

Every ``testsuite`` and the ``testsuites`` root carry ``tests``, ``failures``, ``errors`` and
``skipped``: Jenkins' JUnit plugin and GitLab's report parser read the counts from the suites
(GitLab shows 0 tests for a suite without them). ``errors`` is always 0: a phone the scanner could
not judge is UNKNOWN (skipped, with the reason), never a test that crashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from scanner.report.files import write_atomic


def _counts(el: ET.Element, tests: int, failures: int, skipped: int) -> None:
    el.set("tests", str(tests))
    el.set("failures", str(failures))
    el.set("errors", "0")
    el.set("skipped", str(skipped))


def render(report: dict[str, Any]) -> bytes:
    devices = report["devices"]
    clusters = report["clusters"]
    root = ET.Element("testsuites", name="trustscan")
    suite = ET.SubElement(root, "testsuite", name="migration-readiness")
    failed = sum(d["readiness"] == "NOT_READY" for d in devices)
    skipped = sum(d["readiness"] == "UNKNOWN" for d in devices)
    _counts(suite, len(devices), failed, skipped)
    for d in devices:
        case = ET.SubElement(suite, "testcase", classname=d["device_pool"] or "phones", name=d["name"])
        detail = "\n".join(f"{f['code']}: {f['message']}" for f in d["findings"] if f["severity"] != "INFO")
        if d["readiness"] == "NOT_READY":
            ET.SubElement(case, "failure", message=" ".join(d["reasons"]), type="NOT_READY").text = detail
        elif d["readiness"] == "UNKNOWN":
            ET.SubElement(case, "skipped", message="UNKNOWN: " + " ".join(d["reasons"]))
    csuite = ET.SubElement(root, "testsuite", name="clusters")
    cluster_failures = 0
    for name, c in clusters.items():
        case = ET.SubElement(csuite, "testcase", classname="clusters", name=name)
        blockers = [f for f in c["findings"] if f["severity"] == "BLOCKER"]
        if blockers:
            cluster_failures += 1
            ET.SubElement(case, "failure", message=" ".join(sorted({f["code"] for f in blockers})),
                          type="BLOCKER").text = "\n".join(f"{f['code']}: {f['message']}" for f in blockers)
    _counts(csuite, len(clusters), cluster_failures, 0)
    _counts(root, len(devices) + len(clusters), failed + cluster_failures, skipped)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def write(report: dict[str, Any], out: Path) -> Path:
    path = out / "junit.xml"
    write_atomic(path, render(report))
    return path
