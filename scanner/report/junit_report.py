"""``junit.xml``: one test case per phone for CI systems that show JUnit results.

NOT_READY is a failure (its blockers as the message), UNKNOWN is skipped (the missing evidence as
the reason), READY passes. Cluster findings of severity BLOCKER are failures of a "clusters" suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from scanner.report.files import write_atomic


def render(report: dict[str, Any]) -> bytes:
    devices = report["devices"]
    root = ET.Element("testsuites", name="trustscan", tests=str(len(devices)))
    suite = ET.SubElement(
        root, "testsuite", name="migration-readiness", tests=str(len(devices)),
        failures=str(sum(d["readiness"] == "NOT_READY" for d in devices)),
        skipped=str(sum(d["readiness"] == "UNKNOWN" for d in devices)),
    )
    for d in devices:
        case = ET.SubElement(suite, "testcase", classname=d["device_pool"] or "phones", name=d["name"])
        detail = "\n".join(f"{f['code']}: {f['message']}" for f in d["findings"] if f["severity"] != "INFO")
        if d["readiness"] == "NOT_READY":
            ET.SubElement(case, "failure", message=" ".join(d["reasons"]), type="NOT_READY").text = detail
        elif d["readiness"] == "UNKNOWN":
            ET.SubElement(case, "skipped", message="UNKNOWN: " + " ".join(d["reasons"]))
    clusters = ET.SubElement(root, "testsuite", name="clusters")
    for name, c in report["clusters"].items():
        case = ET.SubElement(clusters, "testcase", classname="clusters", name=name)
        blockers = [f for f in c["findings"] if f["severity"] == "BLOCKER"]
        if blockers:
            ET.SubElement(case, "failure", message=" ".join(sorted({f["code"] for f in blockers}))).text = "\n".join(
                f"{f['code']}: {f['message']}" for f in blockers
            )
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def write(report: dict[str, Any], out: Path) -> Path:
    path = out / "junit.xml"
    write_atomic(path, render(report))
    return path
