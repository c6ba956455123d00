"""Provider keys: from the environment variable a model's `config.api_key_env` names, or
the file `config.api_key_file` names, which must be the appliance user's and readable by
nobody else (0600 or 0400), as ssh holds private keys. Read at each call, so a key
changed in the file is used at once; never stored, logged or returned."""

from __future__ import annotations

import os
import stat

from appliance.core.errors import ValidationError
from appliance.services.llm.endpoints import Endpoint


def provider_key(endpoint: Endpoint) -> str | None:
    if endpoint.api_key_file:
        return _from_file(endpoint.api_key_file, endpoint.model_id)
    if endpoint.api_key_env:
        value = os.environ.get(endpoint.api_key_env, "").strip()
        if not value:
            raise ValidationError(
                f"model {endpoint.model_id} takes its key from the environment variable {endpoint.api_key_env}, "
                "which the appliance's process does not have: set it where the appliance starts (its systemd "
                "unit's Environment=) and restart, or use config.api_key_file"
            )
        return value
    return None


def _from_file(path: str, model_id: str) -> str:
    where = f"model {model_id}: the key file {path}"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ValidationError(f"{where} does not exist") from None
    except OSError as exc:
        raise ValidationError(f"{where} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError(f"{where} is not a regular file")
    if info.st_mode & 0o077:
        raise ValidationError(
            f"{where} can be read by others (mode {stat.S_IMODE(info.st_mode):04o}); `chmod 600 {path}` and retry"
        )
    if info.st_uid != os.geteuid():
        raise ValidationError(f"{where} belongs to another user; it must be the appliance user's")
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{where} cannot be read ({type(exc).__name__})") from None
    if not value:
        raise ValidationError(f"{where} is empty")
    return value


def scrub(text: str, key: str | None) -> str:
    """`text` (a provider's error message) with the key, should it echo it, masked."""
    if not key:
        return text
    return text.replace(key, "***")
