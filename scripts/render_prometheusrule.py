#!/usr/bin/env python3
"""Write deploy/kubernetes/prometheusrule.yaml from deploy/prometheus/rules/driftwatch-alerts.yml.

The PrometheusRule's ``spec.groups`` is the rules file's ``groups``, copied as text (comments
included), so the alerts Kubernetes loads are the alerts promtool tests. Run after changing the
rules::

    python3 scripts/render_prometheusrule.py          # rewrite the manifest
    python3 scripts/render_prometheusrule.py --check  # exit 1 if it is out of date

Standard library only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "prometheus" / "rules" / "driftwatch-alerts.yml"
MANIFEST = REPO / "deploy" / "kubernetes" / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/rules/driftwatch-alerts.yml by
# scripts/render_prometheusrule.py; do not edit (tests/deploy/test_kubernetes.py checks it).
# The label "role: alert-rules" is what a Prometheus resource's ruleSelector usually matches;
# adjust it to your Prometheus Operator installation.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: driftwatch
  namespace: driftwatch
  labels:
    app.kubernetes.io/name: driftwatch
    role: alert-rules
spec:
"""


def render(rules_text: str) -> str:
    """The manifest for a rules file whose top level is one ``groups:`` key (and comments)."""
    lines = rules_text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("groups:")]
    if len(starts) != 1:
        raise ValueError(f"{RULES.name}: expected one top-level 'groups:' line")
    body = lines[starts[0] :]
    stray = [line for line in body[1:] if line and not line.startswith((" ", "#"))]
    if stray:
        raise ValueError(f"{RULES.name}: top-level keys after 'groups:': {stray[0]!r}")
    return HEADER + "".join(f"  {line}\n" if line else "\n" for line in body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the manifest is stale")
    args = parser.parse_args(argv)
    text = render(RULES.read_text(encoding="utf-8"))
    if args.check:
        current = MANIFEST.read_text(encoding="utf-8") if MANIFEST.exists() else ""
        if current != text:
            print(
                f"{MANIFEST.relative_to(REPO)} is out of date: run {sys.argv[0]}", file=sys.stderr
            )
            return 1
        return 0
    MANIFEST.write_text(text, encoding="utf-8")
    print(f"wrote {MANIFEST.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
