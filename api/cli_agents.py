"""`ccstream agents`: status of the agents over the log, and skip or retry of their quarantined events.

Works on the agents' own stores (job.db, the archiver's state file), so it answers whether or not the
server runs; skip and retry are filed there and carried out by the server's runners (see api.agents).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from api.agents import AgentControl, RequestRefused, check_request, file_and_wait
from api.cli_common import CliError, cli_settings
from api.config import Settings
from streams.runtime.quarantine import Action


@contextmanager
def _controls(settings: Settings) -> Iterator[tuple[int, list[AgentControl]]]:
    """The log's head and each agent's store (the job database's first; the archiver's when it has one)."""
    from api.bootstrap import open_log
    from archive.agentstate import AgentStateStore, StoredAgent
    from projections.jobdb import JobDatabaseControl

    if not Path(settings.main.db).exists():
        raise CliError(f"no job database at {settings.main.db} (main.db): has the server run here?")
    log = open_log(settings)
    state = None
    try:
        controls: list[AgentControl] = [JobDatabaseControl(settings.main.db)]
        if settings.archiver.enabled and Path(settings.archiver.state_path).exists():
            state = AgentStateStore(settings.archiver.state_path)
            controls.append(StoredAgent(state, "archiver"))
        yield log.head(), controls
    finally:
        if state is not None:
            state.close()
        log.close()


def _report(head: int, control: AgentControl) -> dict[str, Any]:
    checkpoint = control.checkpoint()
    return {
        "name": control.name, "checkpoint": checkpoint, "head": head, "behind": max(head - checkpoint, 0),
        "quarantine": [asdict(q) for q in control.quarantined()],
        "requests": [asdict(r) for r in control.requests()],
    }


def cmd_agents_status(args: argparse.Namespace) -> None:
    """Each agent's checkpoint, how far behind the log it is, what it quarantined and what is requested."""
    with _controls(cli_settings(args)) as (head, controls):
        reports = [_report(head, c) for c in controls]
    if args.json:
        print(json.dumps(reports, indent=2))
        return
    for r in reports:
        print(f"{r['name']}: checkpoint {r['checkpoint']} of {r['head']} ({r['behind']} behind), "
              f"{len(r['quarantine'])} quarantined")
        for q in r["quarantine"]:
            print(f"  position {q['position']} {q['type']} {q['subject']} ({q['attempts']} attempt(s)): {q['error']}")
        for req in r["requests"]:
            print(f"  requested: {req['action']} of position {req['position']}")


def _file(args: argparse.Namespace, action: Action) -> None:
    with _controls(cli_settings(args)) as (head, controls):
        control = next((c for c in controls if c.name == args.agent), None)
        if control is None:
            raise CliError(f"no agent {args.agent!r} (agents: {', '.join(c.name for c in controls)})")
        try:
            check_request(control, args.position, action, head)
        except RequestRefused as exc:
            raise CliError(str(exc)) from None
        outcome = file_and_wait(control, args.position, action, args.wait)
    print(outcome.message())
    if outcome.settled and action == "retry" and outcome.quarantine is not None:
        raise CliError("the retry failed")


def cmd_agents_skip(args: argparse.Namespace) -> None:
    """Skip the event an agent is blocked on (quarantined with its last error)."""
    _file(args, "skip")


def cmd_agents_retry(args: argparse.Namespace) -> None:
    """Apply a quarantined event again."""
    _file(args, "retry")


def configure(sub: Any) -> None:
    """Add `agents status|skip|retry` to the CLI's sub-commands."""
    agents = sub.add_parser("agents", help="Agents over the log: status, skip or retry quarantined events.",
                            description="Agents over the log (jobdb, archiver): status, quarantined events.")
    actions = agents.add_subparsers(dest="agents_command", required=True, metavar="ACTION")
    p = actions.add_parser("status", help="Checkpoint, lag, quarantined events and open requests per agent.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_agents_status)
    for name, fn, help_ in (
        ("skip", cmd_agents_skip, "Skip the event an agent is blocked on; it is quarantined and the agent goes on."),
        ("retry", cmd_agents_retry, "Apply a quarantined event again (after a fix)."),
    ):
        p = actions.add_parser(name, help=help_, description=help_)
        p.add_argument("position", type=int, help="log position (from `ccstream agents status` or the server log)")
        p.add_argument("--agent", default="jobdb", help="agent name (default jobdb; or archiver)")
        p.add_argument("--wait", type=float, default=10.0,
                       help="seconds to wait for the server to act on it (default 10)")
        p.set_defaults(func=fn)
