"""The config.json keys cc-backend accepts and ccstream does not act on yet, refused at start when they matter.

Every key of the settings models either acts (something in the product reads it) or is listed here;
a test walks the models and fails on any other key. A listed key is refused only when its value differs
from its default: cc-backend's example and generated config files write harmless defaults explicitly
(`"embed-static-files": true`, `"systemd-unit": "clustercockpit"`, the `cron` intervals), and such a file
asks for nothing ccstream fails to do, so it must keep starting. Any other value asks for behaviour
ccstream would silently not provide, so the start stops and says which key and what to do.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_REMOVE = "remove the key (or set it to its default) to start"

#: Dotted config.json key → what to do instead. A section's key covers everything below it.
NOT_SUPPORTED: dict[str, str] = {
    "main.embed-static-files": "ccstream has no web UI yet; " + _REMOVE,
    "main.static-files": "ccstream has no web UI yet; " + _REMOVE,
    "main.enable-job-taggers": "ccstream's job taggers are not available yet; " + _REMOVE,
    "main.session-max-age": "ccstream has no web login sessions yet; " + _REMOVE,
    "main.emission-constant": "ccstream has no web UI yet; " + _REMOVE,
    "main.resampling.trigger": "ccstream has no web UI yet to zoom metric plots in (GraphQL uses the other "
    "resampling keys); " + _REMOVE,
    "main.resampling.targetPoints": "ccstream has no web UI yet; " + _REMOVE,
    "main.systemd-unit": "ccstream has no web UI log viewer yet; " + _REMOVE,
    "auth.jwts.cookieName": "ccstream has no web login yet; " + _REMOVE,
    "auth.jwts.trustedIssuer": "ccstream has no login with foreign JWTs yet; " + _REMOVE,
    "auth.jwts.syncUserOnLogin": "ccstream has no login with foreign JWTs yet; " + _REMOVE,
    "auth.jwts.updateUserOnLogin": "ccstream has no login with foreign JWTs yet; " + _REMOVE,
    "auth.ldap": "ccstream has no LDAP login yet; add users with `ccstream add-user`; " + _REMOVE,
    "auth.oidc": "ccstream has no OpenID Connect login yet; " + _REMOVE,
    "metric-store.num-workers": "ccstream writes snapshots and archives with one background thread; " + _REMOVE,
    "metric-store.checkpoints.file-format": "ccstream writes binary snapshots plus a write-ahead log (cc-backend's "
    "'wal'); set 'wal' or " + _REMOVE,
    "cron.commit-job-worker": "ccstream commits every job start at once, there is nothing to batch; " + _REMOVE,
    "ui": "ccstream has no web UI yet; " + _REMOVE,
    "ui-file": "ccstream has no web UI yet; " + _REMOVE,
}


def _field(model: type[BaseModel], key: str) -> tuple[str, Any] | None:
    """(Python name, FieldInfo) of the field spelled `key` in config.json (its alias, else its name)."""
    for name, field in model.model_fields.items():
        if (field.alias or name) == key:
            return name, field
    return None



def set_to_other_than_default(settings: BaseModel, dotted: str) -> bool:
    """True when the key `dotted` (config spelling) holds a value other than its default.

    A key under a section that is absent (None) is not set. KeyError when a part names no field.
    """
    value: Any = settings
    parts = dotted.split(".")
    for n, part in enumerate(parts):
        found = _field(type(value), part)
        if found is None:
            raise KeyError(f"{dotted}: no setting {part!r} in {type(value).__name__}")
        name, field = found
        value = getattr(value, name)
        if n == len(parts) - 1:
            return bool(value != field.get_default(call_default_factory=True))
        if value is None:
            return False
    return False


def refusals(settings: BaseModel, registry: dict[str, str] = NOT_SUPPORTED) -> list[str]:
    """One message per listed key the settings set to something other than its default, in registry order."""
    return [f"`{key}` is not supported yet: {advice}" for key, advice in registry.items()
            if set_to_other_than_default(settings, key)]


def is_listed(dotted: str, registry: dict[str, str] = NOT_SUPPORTED) -> bool:
    """Whether `dotted` or a section above it is in the registry."""
    parts = dotted.split(".")
    return any(".".join(parts[:n]) in registry for n in range(1, len(parts) + 1))
