"""Who may call what: the roles of named tokens and the one permission matrix of every service's routes.

Each route is named as Flask names it ("METHOD /rule", the rule as in the app's url_map) and needs one
access level: PUBLIC (anyone: the page and the SDKs), INGEST (the ingest key, or an admin token), READ
(a viewer token or better; anyone when PUBLIC_READS=true) or a role. Roles are ordered: each one may do
everything the ones before it may. core.web enforces the matrix before every request; a route missing
from it needs the admin role (and fails tests/api/test_roles.py until it is listed). The README prints
this matrix (`python -m core.roles` writes the table).
"""
from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum


class Role(IntEnum):
    VIEWER = 1  # read stats, results, flags and experiments
    ANALYST = 2  # viewer, plus metric definitions and exports
    EDITOR = 3  # analyst, plus writing flags and experiments
    ADMIN = 4  # editor, plus tokens, webhooks, retention and the audit log

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}: one of {', '.join(r.label for r in cls)}") from None


PUBLIC = "public"
INGEST = "ingest"
READ = "read"
Access = Role | str

PERMISSIONS: Mapping[str, Mapping[str, Access]] = {
    "ab_service": {
        "GET /health": PUBLIC,
        "GET /openapi.json": PUBLIC,
        "GET /static/<path:filename>": PUBLIC,  # Flask's: no files here
        "GET /assign": PUBLIC,
        "GET /api/features/<client_key>": PUBLIC,
        "POST /assignments": INGEST,
        "GET /whoami": Role.VIEWER,
        "GET /config": READ,
        "POST /config": Role.EDITOR,
        "GET /flags": READ,
        "POST /flags": Role.EDITOR,
        "GET /flags/<key>": READ,
        "PATCH /flags/<key>": Role.EDITOR,
        "GET /flags/<key>/schedule": READ,
        "POST /flags/<key>/schedule": Role.EDITOR,
        "DELETE /flags/<key>/schedule/<schedule_id>": Role.EDITOR,
        "GET /experiments": READ,
        "POST /experiments": Role.EDITOR,
        "GET /experiments/<key>": READ,
        "PATCH /experiments/<key>": Role.EDITOR,
        "GET /audit": Role.ADMIN,
        "GET /webhooks": Role.ADMIN,
        "POST /webhooks": Role.ADMIN,
        "DELETE /webhooks/<webhook_id>": Role.ADMIN,
    },
    "metrics_service": {
        "GET /health": PUBLIC,
        "GET /openapi.json": PUBLIC,
        "GET /static/<path:filename>": PUBLIC,  # Flask's: no files here
        "POST /events": INGEST,
        "GET /stats": READ,
        "GET /stats/timeseries": READ,
        "GET /stats/funnel": READ,
        "GET /stats/traffic": READ,
        "GET /experiments/<key>/results": READ,
        "GET /experiments/<key>/timeseries": READ,
        "GET /experiments/<key>/summary": READ,
        "GET /experiments/<key>/plan": READ,
        "POST /experiments/<key>/plan": Role.ANALYST,
        "GET /event-types": READ,
        "POST /event-types": Role.ANALYST,
        "GET /metrics": READ,
        "GET /metrics/<key>": READ,
        "POST /metrics": Role.ANALYST,
        "PATCH /metrics/<key>": Role.ANALYST,
        "GET /events/export": Role.ANALYST,
        "GET /experiments/<key>/export": Role.ANALYST,
        "GET /events/fold-failures": Role.ADMIN,
    },
    "landing": {
        "GET /": PUBLIC,
        "GET /health": PUBLIC,
        "GET /openapi.json": PUBLIC,
        "GET /static/<path:filename>": PUBLIC,
        "GET /theme.css": PUBLIC,
        "POST /track": PUBLIC,
        "POST /signup": PUBLIC,
    },
}

def required(service: str, method: str, rule: str) -> Access:
    """What the route needs; the admin role for a route the matrix does not list."""
    return PERMISSIONS.get(service, {}).get(f"{method} {rule}", Role.ADMIN)


def allows(access: Access, role: Role | None, public_reads: bool = False) -> bool:
    """Whether a caller with `role` (None: no valid token) may use a route needing `access` (the ingest
    key is checked by the caller)."""
    if access == PUBLIC or (access == READ and public_reads):
        return True
    if role is None:
        return False
    if access == INGEST:
        return role >= Role.ADMIN
    return role >= (Role.VIEWER if access == READ else access)


def lowest_role(access: Access) -> Role | None:
    """The least role that passes `access` with reads closed; None for public routes."""
    return next((role for role in Role if allows(access, role)), None)


def markdown_table() -> str:
    """The matrix as the README prints it: one row per route, a column per role (✓: allowed)."""
    lines = ["| Service | Route | anyone | viewer | analyst | editor | admin |",
             "|---|---|---|---|---|---|---|"]
    for service, routes in PERMISSIONS.items():
        for route, access in routes.items():
            cells = ["✓" if allows(access, None) else ("with PUBLIC_READS" if access == READ else "")]
            cells += ["✓" if allows(access, role) else "" for role in Role]
            if access == INGEST:
                cells[0] = "ingest key"
            lines.append(f"| {service} | `{route}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
