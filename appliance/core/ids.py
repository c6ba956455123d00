"""Identifiers with the prefixes the API documents."""

from __future__ import annotations

import secrets

from appliance.core.clock import utc_now


def new_eval_id() -> str:
    """`eval_20250629_123456_abc123`: sortable by creation second, random tail."""
    stamp = utc_now().strftime("%Y%m%d_%H%M%S")
    return f"eval_{stamp}_{secrets.token_hex(3)}"


def new_batch_id() -> str:
    stamp = utc_now().strftime("%Y%m%d_%H%M%S")
    return f"batch_{stamp}_{secrets.token_hex(4)}"


def new_sandbox_id() -> str:
    return f"sb_{secrets.token_hex(6)}"


def new_snapshot_id() -> str:
    return f"snap_{secrets.token_hex(6)}"


def new_experiment_id() -> str:
    return f"exp_{secrets.token_hex(6)}"


def new_run_id() -> str:
    return f"run_{secrets.token_hex(6)}"


def new_checkpoint_id() -> str:
    return f"ckpt_{secrets.token_hex(6)}"
