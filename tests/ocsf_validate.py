#!/usr/bin/env python3
"""Validates segwatch's OCSF output with an independent implementation of OCSF: the pydantic
models of `py-ocsf-models` (Prowler's, OCSF 1.5.0).

Usage: ocsf_validate.py [--hec] FILE...

Each line of each FILE is one OCSF event (with --hec: one Splunk HEC envelope whose `event` is
the OCSF event). Every event is validated against the model of its class (2003 Compliance
Finding, 2004 Detection Finding), and beyond what the models check (they ignore unknown
keys): the keys of the event and of the objects segwatch fills must be ones the models know
(or, listed below, that OCSF 1.5.0 defines and the models lack), and `type_uid`,
`category_uid` and `metadata.version` must hold what OCSF requires. The first bad line stops
the run with its file, line number and error, and exit status 1. Exit status 2: the package is
missing.
"""

import json
import sys

try:
    from py_ocsf_models.events.findings.compliance_finding import ComplianceFinding
    from py_ocsf_models.events.findings.detection_finding import DetectionFinding
    from py_ocsf_models.objects.compliance import Compliance
    from py_ocsf_models.objects.finding_info import FindingInformation
    from py_ocsf_models.objects.metadata import Metadata
    from py_ocsf_models.objects.product import Product
    from py_ocsf_models.objects.remediation import Remediation
    from py_ocsf_models.objects.resource_details import ResourceDetails
    from py_ocsf_models.objects.group import Group
    from py_ocsf_models.objects.analytic import Analytic
except ImportError as e:  # pragma: no cover - reported to the caller
    print(f"py-ocsf-models is not installed: {e}", file=sys.stderr)
    sys.exit(2)

OCSF_VERSION = "1.5.0"
CLASSES = {2003: ComplianceFinding, 2004: DetectionFinding}
# Attributes OCSF 1.5.0 defines for the class that the models do not declare:
# detection_finding.json `is_alert`.
EXTRA = {2003: set(), 2004: {"is_alert"}}


class Bad(Exception):
    pass


def keys_known(where, obj, model, extra=()):
    if not isinstance(obj, dict):
        raise Bad(f"{where} is not an object")
    unknown = set(obj) - set(model.model_fields) - set(extra)
    if unknown:
        raise Bad(f"{where}: keys unknown to {model.__name__}: {sorted(unknown)}")


def check(event):
    if not isinstance(event, dict):
        raise Bad("not a JSON object")
    class_uid = event.get("class_uid")
    model = CLASSES.get(class_uid)
    if model is None:
        raise Bad(f"class_uid {class_uid!r} is neither 2003 nor 2004")
    model.model_validate(event)
    keys_known("event", event, model, EXTRA[class_uid])
    keys_known("finding_info", event["finding_info"], FindingInformation)
    if "analytic" in event["finding_info"]:
        keys_known("finding_info.analytic", event["finding_info"]["analytic"], Analytic)
    keys_known("metadata", event["metadata"], Metadata)
    keys_known("metadata.product", event["metadata"]["product"], Product)
    for i, r in enumerate(event.get("resources") or []):
        keys_known(f"resources[{i}]", r, ResourceDetails)
        if "group" in r:
            keys_known(f"resources[{i}].group", r["group"], Group)
    if "remediation" in event:
        keys_known("remediation", event["remediation"], Remediation)
    if "compliance" in event:
        # objects/compliance.json (1.5.0) defines `status`, the caption of `status_id`.
        keys_known("compliance", event["compliance"], Compliance, {"status"})
    activity = event.get("activity_id")
    if event.get("type_uid") != class_uid * 100 + activity:
        raise Bad(f"type_uid {event.get('type_uid')} is not class_uid * 100 + activity_id")
    if event.get("category_uid") != 2:
        raise Bad("category_uid is not 2 (Findings)")
    if event["metadata"].get("version") != OCSF_VERSION:
        raise Bad(f"metadata.version is not {OCSF_VERSION}")
    return class_uid


def main(argv):
    hec = "--hec" in argv
    files = [a for a in argv if a != "--hec"]
    if not files:
        print(__doc__, file=sys.stderr)
        return 2
    counts = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    print(f"{path}:{number}: an empty line", file=sys.stderr)
                    return 1
                try:
                    event = json.loads(line)
                    if hec:
                        if event.get("sourcetype") != "ocsf" or not isinstance(event.get("time"), (int, float)):
                            raise Bad("a HEC envelope needs sourcetype `ocsf` and a numeric time")
                        event = event["event"]
                    class_uid = check(event)
                except Exception as e:  # noqa: BLE001 - every failure is reported the same way
                    print(f"{path}:{number}: invalid OCSF event: {e}\n  {line.strip()[:500]}", file=sys.stderr)
                    return 1
                counts[class_uid] = counts.get(class_uid, 0) + 1
    total = sum(counts.values())
    detail = ", ".join(f"{n} of class {c}" for c, n in sorted(counts.items()))
    print(f"{total} OCSF events valid ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
