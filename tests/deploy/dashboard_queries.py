"""PromQL expressions of a Grafana dashboard, ready to send to a real Prometheus.

Grafana expands its macros and template variables before a query reaches Prometheus;
:func:`dashboard_exprs` does the same with fixed values so that every query of a
dashboard can be checked by ``promtool`` or evaluated through Prometheus' HTTP API::

    from dashboard_queries import dashboard_exprs

    for expr in dashboard_exprs("deploy/grafana/dashboards/driftwatch.json"):
        ...  # GET /api/v1/query?query=<expr>

Only the standard library is used, so the module can also be loaded by file path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = [
    "MACROS",
    "VARIABLE_VALUE",
    "dashboard_exprs",
    "iter_panels",
    "metric_names",
    "substitute",
]

#: Values used for Grafana's built-in interval/range macros.
MACROS: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__rate_interval_ms": "60000",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}

#: Value used for every query template variable ("All" selected, used in =~ matchers).
#: Custom variables (a fixed list of values, such as a top-k count) take their current value.
VARIABLE_VALUE = ".*"

# $name, ${name}, ${name:format}, [[name]], [[name:format]]
_VARIABLE = re.compile(
    r"\$\{(?P<braced>\w+)(?::[^}]*)?\}"
    r"|\[\[(?P<bracketed>\w+)(?::[^\]]*)?\]\]"
    r"|\$(?P<plain>[A-Za-z_]\w*)"
)


def substitute(expr: str, variables: Mapping[str, str | None]) -> str:
    """Expand Grafana macros and the given template variables in ``expr``.

    ``variables`` maps a variable name to its replacement; ``None`` leaves the
    reference untouched (a datasource variable, say). Unknown names raise ``ValueError``.

    >>> substitute('rate(x{key=~"$key"}[$__rate_interval])', {"key": ".*"})
    'rate(x{key=~".*"}[1m])'
    >>> substitute('x{f=~"${feature:regex}"} offset [[__range]]', {"feature": ".*"})
    'x{f=~".*"} offset 5m'
    >>> substitute('label_replace(x, "a", "$1", "b", "(.*)")', {})
    'label_replace(x, "a", "$1", "b", "(.*)")'
    >>> substitute("x{a=~'$missing'}", {})
    Traceback (most recent call last):
    ...
    ValueError: unknown Grafana variable $missing in: x{a=~'$missing'}
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bracketed") or match.group("plain")
        if name in MACROS:
            return MACROS[name]
        if name in variables:
            value = variables[name]
            return match.group(0) if value is None else value
        raise ValueError(f"unknown Grafana variable ${name} in: {expr}")

    return _VARIABLE.sub(replace, expr)


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, including those nested in (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from iter_panels(panel)


def _variables(dashboard: Mapping[str, Any]) -> dict[str, str | None]:
    variables: dict[str, str | None] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        # A datasource variable selects where a query goes; it never appears in PromQL.
        kind = variable.get("type")
        if kind == "datasource":
            variables[variable["name"]] = None
        elif kind == "custom":
            variables[variable["name"]] = str(variable["current"]["value"])
        else:
            variables[variable["name"]] = VARIABLE_VALUE
    return variables


def dashboard_exprs(path: str | PathLike[str]) -> list[str]:
    """Every PromQL expression of the dashboard at ``path``, macros substituted.

    Panel targets come first (in panel order, nested row panels included), then
    annotation queries. Targets without an ``expr`` (other datasources) are skipped.
    Query variables become ``.*`` (all values), custom ones their current value,
    ``$__rate_interval`` ``1m``,
    ``$__interval`` ``15s`` and ``$__range`` ``5m``.
    """
    dashboard = json.loads(Path(path).read_text(encoding="utf-8"))
    variables = _variables(dashboard)
    raw: list[str] = [
        target["expr"]
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    raw += [
        annotation["expr"]
        for annotation in dashboard.get("annotations", {}).get("list", [])
        if annotation.get("expr")
    ]
    return [substitute(expr, variables) for expr in raw]


_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (a lexical approximation).

    Label names, function names, keywords, durations and string contents are ignored.

    >>> sorted(metric_names(
    ...     'histogram_quantile(0.99, sum by (le) (rate(lat_bucket{a="b"}[$__rate_interval])))'
    ...     ' / on (x) group_left (y) other offset 1m > bool 1e-05'
    ... ))
    ['lat_bucket', 'other']
    >>> sorted(metric_names('topk($topk, max by (k) (x{a=~"$a"}))'))
    ['x']
    >>> sorted(metric_names('{__name__="up", job="x"} or vector(0)'))
    ['up']
    """
    names = {a or b for a, b in _NAME_MATCHER.findall(expr)}
    text = _STRING.sub('""', expr)
    text = _VARIABLE.sub("0", text)  # a template variable in a parameter: topk($topk, x)
    text = _GROUPING.sub(" ", text)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    for match in _IDENTIFIER.finditer(text):
        start, end = match.span()
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue  # exponent or duration unit: 1e-05, 5m
        if text[end:].lstrip().startswith("("):
            continue  # function or aggregation
        if match.group(0).lower() in _KEYWORDS:
            continue
        names.add(match.group(0))
    return names
