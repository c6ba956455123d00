"""Who is making a request, and what they may do."""

from __future__ import annotations

import msgspec

ADMIN = "admin"
EXECUTE = "execute"  # submit evaluations, kill one's own
READ = "read"  # read one's own evaluations, their logs and the queue
SANDBOX_READ = "sandbox_read"  # list and inspect one's own sandboxes, files and snapshots
SANDBOX_WRITE = "sandbox_write"  # create, change and delete them, upload files

PERMISSIONS = frozenset({ADMIN, EXECUTE, READ, SANDBOX_READ, SANDBOX_WRITE})
DEFAULT_PERMISSIONS = (EXECUTE, READ)


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str | None  # None for anonymous callers
    name: str
    owner: str
    permissions: frozenset[str] = frozenset()
    # The browser session (core/sessions.py) the request came with, if it came with one.
    session_id: str | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.key_id is None

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.permissions

    def can(self, permission: str) -> bool:
        return self.is_admin or permission in self.permissions

    def may_see(self, owner: str) -> bool:
        return self.is_admin or (not self.is_anonymous and owner == self.owner)

    @property
    def rate_key(self) -> str:
        return self.key_id or f"anon:{self.name}"


# Whoever runs the appliance's own commands on its machine (`appliance keys ...`, the first
# admin key, the TUI's session key): they hold the data dir, so they act as admin.
LOCAL_OPERATOR = Identity(key_id="local", name="local operator", owner="admin", permissions=frozenset({ADMIN}))


def anonymous(client_host: str) -> Identity:
    return Identity(key_id=None, name=client_host or "unknown", owner="")
