"""`appliance keys create|list|revoke`: API keys, straight on the data dir's database."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from appliance.cli.common import settings_from_args
from appliance.core.clock import iso_z
from appliance.core.identity import LOCAL_OPERATOR

if TYPE_CHECKING:
    from appliance.services.access.auth import AuthService

T = TypeVar("T")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", parents=[common], help="create a key; it is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--permissions", help="comma-separated: execute,read,admin (default execute,read)")
    create.add_argument("--owner", help="who owns the evaluations made with it (default: the name)")
    create.add_argument("--expires", help="UTC expiry, e.g. 2027-01-01T00:00:00Z")
    create.set_defaults(func=cmd_keys_create)
    keys.add_parser("list", parents=[common], help="list keys").set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", parents=[common], help="revoke a key")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)


def _with_auth(args: argparse.Namespace, action: Callable[[AuthService], Awaitable[T]]) -> T:
    from appliance.app import open_auth

    async def run() -> T:
        async with open_auth(settings_from_args(args)) as auth:
            return await action(auth)

    return asyncio.run(run())


def cmd_keys_create(args: argparse.Namespace) -> int:
    permissions = [p.strip() for p in (args.permissions or "").split(",") if p.strip()] or None
    expires = datetime.fromisoformat(args.expires.replace("Z", "+00:00")) if args.expires else None
    created = _with_auth(
        args, lambda auth: auth.create_key(LOCAL_OPERATOR, args.name, permissions, owner=args.owner, expires_at=expires)
    )
    record = created.record
    print(
        f"created {record.key_id} '{record.name}' owner={record.owner} permissions={','.join(record.permissions)}",
        file=sys.stderr,
    )
    print("This is the only time the key is shown; store it now:", file=sys.stderr)
    print(created.secret)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    records = _with_auth(args, lambda auth: auth.list_keys(LOCAL_OPERATOR))
    print(f"{'KEY ID':18} {'NAME':20} {'OWNER':16} {'PERMISSIONS':24} {'CREATED':26} STATE")
    for r in records:
        state = "revoked" if r.revoked_at else "active"
        print(
            f"{r.key_id:18} {r.name[:20]:20} {r.owner[:16]:16} {','.join(r.permissions)[:24]:24} "
            f"{iso_z(r.created_at):26} {state}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    _with_auth(args, lambda auth: auth.revoke_key(LOCAL_OPERATOR, args.key_id))
    print(f"revoked {args.key_id}", file=sys.stderr)
    return 0
