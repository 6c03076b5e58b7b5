#!/usr/bin/env python3
"""validate_mpijob.py: check MPIJob manifests (Kubeflow MPI Operator, kubeflow.org/v2beta1) before a
cluster sees them: the job's own fields against deploy/schemas/mpijob-v2beta1.schema.json (written
from the operator's CRD and its validation rules), then each replica's pod template against
Kubernetes' own PodTemplate schema (kubernetes-validate, strict: an unknown field is an error).
Needs PyYAML, jsonschema and kubernetes-validate (pip install kubernetes-validate brings all three).

Usage: validate_mpijob.py FILE.yaml...   exit 0 when every MPIJob in them is valid, 1 otherwise.
"""
import json
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "schemas",
                      "mpijob-v2beta1.schema.json")


def where(error):
    return "/".join(str(p) for p in error.absolute_path) or "(top)"


def check(path, doc, schema):
    name = doc.get("metadata", {}).get("name", "?")
    errors = [f"{where(e)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    for role, replica in (doc.get("spec", {}).get("mpiReplicaSpecs") or {}).items():
        template = replica.get("template") if isinstance(replica, dict) else None
        if not isinstance(template, dict):
            continue
        pod = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"{name}-{role.lower()}"},
               "template": template}
        try:
            kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as e:
            inner = "/".join(str(p) for p in e.path)  # starts at the PodTemplate's "template"
            errors.append(f"spec/mpiReplicaSpecs/{role}/{inner}: {e.message}")
    for e in errors:
        print(f"ERROR {path}: MPIJob {name}: {e}")
    if not errors:
        print(f"INFO {path}: MPIJob {name} passed (kubeflow.org/v2beta1; pod templates against Kubernetes "
              f"{kubernetes_validate.latest_version()})")
    return not errors


def main(paths):
    if not paths:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with open(SCHEMA) as f:
        schema = json.load(f)
    ok, seen = True, 0
    for path in paths:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if isinstance(doc, dict) and doc.get("kind") == "MPIJob":
                    seen += 1
                    ok = check(path, doc, schema) and ok
    if seen == 0:
        print("ERROR: no MPIJob in " + ", ".join(paths))
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
