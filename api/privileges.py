"""Dropping root after the listening socket is bound: `main.user` and `main.group`, as cc-backend does.

A server started as root (to listen on 443) runs everything else as the configured user: the event log,
the job database, the archive and the metric store's files are opened after the switch, so they must be
readable and writable by that user. Decided up front (`plan`), before anything is opened, so a user that
does not exist or a server that is not root stops the start with a message instead of running as root.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass


class PrivilegeError(RuntimeError):
    """`main.user` / `main.group` cannot be honoured; the message says why and what to do."""


@dataclass(frozen=True)
class Identity:
    """Who the server becomes: uid None keeps root's uid (only `main.group` given, as cc-backend allows)."""

    uid: int | None
    gid: int
    groups: tuple[int, ...]
    description: str


def plan(user: str, group: str, euid: int | None = None) -> Identity | None:
    """The identity to switch to, or None when neither key is set (a root server then stays root)."""
    if not user and not group:
        return None
    euid = os.geteuid() if euid is None else euid
    named = " and ".join(f"main.{k} {v!r}" for k, v in (("user", user), ("group", group)) if v)
    if euid != 0:
        raise PrivilegeError(f"{named} given, but ccstream runs as uid {euid}, not as root: only root can switch "
                             "to another user; start it as root or remove main.user and main.group")
    account = None
    if user:
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            raise PrivilegeError(f"main.user {user!r}: no such user on this host") from None
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrivilegeError(f"main.group {group!r}: no such group on this host") from None
    else:
        assert account is not None
        gid = account.pw_gid  # the user's primary group
    groups = tuple(os.getgrouplist(user, gid)) if account is not None else (gid,)
    return Identity(account.pw_uid if account is not None else None, gid, groups, named)


def drop(identity: Identity) -> None:
    """Supplementary groups, then the group, then the user: after setuid nothing could change the groups."""
    os.setgroups(list(identity.groups))
    os.setgid(identity.gid)
    if identity.uid is not None:
        os.setuid(identity.uid)
        if identity.uid != 0 and _can_regain_root():
            raise PrivilegeError(f"switched to {identity.description}, yet root could be regained")


def _can_regain_root() -> bool:
    try:
        os.setuid(0)
    except PermissionError:
        return False
    return True
