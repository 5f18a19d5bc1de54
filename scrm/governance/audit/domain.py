"""What an HTTP request did, in audit terms (pure): the action and the thing it acted on, read off the route.

Used for the requests that change something and record nothing more precise themselves (the edge's row, see
:mod:`scrm.governance.audit.edge`). ``POST /api/v1/orders/{number}/cancel`` with ``number=SO100001`` is
``("cancel", "orders", "SO100001")``; ``POST /api/v1/orders`` is ``("create", "orders", "")``;
``POST /console/products/{id}`` is ``("update", "products", "7")``.
"""

from __future__ import annotations

from collections.abc import Mapping

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SURFACE_PREFIXES = {"/api/v1/": "api", "/sidebar/api/": "sidebar", "/console/": "console"}
# Routes whose POST changes nothing (a preview, a dry run, trying a rule on a sentence) or that record themselves
# (sign-in writes its own row, success or not).
READ_ONLY_POSTS = frozenset(
    {
        "/api/v1/segments/preview",
        "/api/v1/broadcasts/preview",
        "/console/rules/dry-run",
        "/console/rules/try",
        "/console/login",
    }
)
# Verbs at the end of a path that name the action better than the method does.
VERB_ALIASES = {"new": "create", "logout": "sign_out", "deactivate": "deactivate", "delete": "delete"}
EXPORT_MARKS = (".csv", ".xlsx", "/export")


def _is_placeholder(part: str) -> bool:
    return part.startswith("{") and part.endswith("}")


def describe(method: str, canonical: str, match: Mapping[str, str], status: int) -> tuple[str, str, str]:
    """(action, entity, entity_id) of a request to route ``canonical`` with path values ``match``."""
    path, surface = canonical, ""
    for prefix, name in SURFACE_PREFIXES.items():
        if canonical.startswith(prefix):
            path, surface = canonical[len(prefix) :], name
            break
    parts = [p for p in path.split("/") if p]
    if len(parts) == 1 and parts[0] in VERB_ALIASES:  # /console/logout: an action on the surface itself
        return VERB_ALIASES[parts[0]], surface, ""
    if method == "GET" and is_export(canonical):
        names = [p.split(".")[0] for p in parts if not _is_placeholder(p)]
        while len(names) > 1 and names[-1] == "export":
            names.pop()
        return "export", names[-1] if names else "", ""
    holes = [i for i, p in enumerate(parts) if _is_placeholder(p)]
    if holes:
        first = holes[0]
        entity = parts[first - 1] if first > 0 else parts[0]
        entity_id = match.get(parts[first][1:-1].split(":")[0], "")
        tail = parts[-1] if not _is_placeholder(parts[-1]) and len(parts) - 1 > first else ""
    else:
        entity, entity_id, tail = (parts[-2], "", parts[-1]) if len(parts) >= 2 else (parts[0] if parts else "", "", "")
    if tail:
        action = VERB_ALIASES.get(tail, tail)
    elif method == "DELETE":
        action = "delete"
    elif method in ("PUT", "PATCH") or holes:
        action = "update"
    else:
        action = "create"
    return action.replace("-", "_"), entity, entity_id


def is_export(canonical: str) -> bool:
    """A GET that hands out data as a file (its own audit row: action ``export``)."""
    return canonical.endswith(EXPORT_MARKS) and not canonical.startswith("/console/static")


def wants_row(method: str, canonical: str) -> bool:
    """Whether a successful request to this route gets a row from the edge (unless it recorded its own)."""
    if method in MUTATING:
        return canonical not in READ_ONLY_POSTS
    return method == "GET" and is_export(canonical)
