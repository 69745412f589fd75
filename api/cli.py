"""The `ccstream` command: init, serve, users, tokens and keys. Errors are one line and a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from api.config import ConfigError, Settings, load_env, load_settings

DEFAULT_CONFIG = {
    "main": {
        "addr": "localhost:8080",
        "db": "./var/job.db",
        "api-allowed-ips": ["*"],
    },
    "archive": {"kind": "file", "path": "./var/job-archive"},
    "auth": {"jwts": {"max-age": "2000h"}},
    "event-log": {"kind": "sqlite", "path": "./var/events.db"},
}


class CliError(Exception):
    """A failure reported to the operator as one line."""


def _settings(args: argparse.Namespace) -> Settings:
    load_env(args.env)
    config = Path(args.config)
    if not config.exists():
        if args.config_given:
            raise CliError(f"{config}: no such config file")
        return Settings()
    return load_settings(config)


def cmd_init(args: argparse.Namespace) -> None:
    """Create var/, config.json, .env (fresh key pair and session key) and an empty job archive."""
    from api.keys import generate_keypair, generate_session_key

    config = Path(args.config)
    if config.exists() and not args.force:
        print(f"{config} exists, kept")
    else:
        config.write_bytes(orjson.dumps(DEFAULT_CONFIG, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"wrote {config}")
    env = Path(args.env)
    if env.exists() and not args.force:
        print(f"{env} exists, kept")
    else:
        public, private = generate_keypair()
        env.write_text(
            f'JWT_PUBLIC_KEY="{public}"\nJWT_PRIVATE_KEY="{private}"\nSESSION_KEY="{generate_session_key()}"\n'
        )
        env.chmod(0o600)
        print(f"wrote {env} with a new Ed25519 key pair")
    settings = load_settings(config)
    Path("var").mkdir(exist_ok=True)
    archive = Path(settings.archive.path)
    archive.mkdir(parents=True, exist_ok=True)
    version = archive / "version.txt"
    if not version.exists():
        version.write_text("3\n")
    for template in args.cluster or []:
        _install_cluster(Path(template), archive)
    print(f"job archive at {archive}")


def _install_cluster(template: Path, archive: Path) -> None:
    try:
        cluster = orjson.loads(template.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise CliError(f"{template}: cannot read cluster.json: {exc}") from None
    name = cluster.get("name") if isinstance(cluster, dict) else None
    if not isinstance(name, str) or not name or "/" in name or ".." in name:
        raise CliError(f"{template}: cluster.json has no usable 'name'")
    target = archive / name / "cluster.json"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(template.read_bytes())
        print(f"installed cluster {name}")


def cmd_serve(args: argparse.Namespace) -> None:
    """Run the server until interrupted."""
    import uvicorn

    from api.app import create_app
    from api.bootstrap import StartupError, build_services

    settings = _settings(args)
    try:
        services = build_services(settings)
    except StartupError as exc:
        raise CliError(str(exc)) from None
    host, _, port = (args.addr or settings.main.addr).rpartition(":")
    app = create_app(services, dev=args.dev)
    uvicorn.run(app, host=host or "0.0.0.0", port=int(port), log_level=args.log_level, access_log=False)


def _append_user_event(settings: Settings, event_type: str, data: dict[str, object]) -> None:
    from api.bootstrap import open_log
    from streams.events import new_event

    log = open_log(settings)
    try:
        log.append([new_event(event_type, f"users/{data['username']}", data, source="cli")])
    finally:
        log.close()


def cmd_add_user(args: argparse.Namespace) -> None:
    """Add (or replace) a local user: `name:role1,role2:password`."""
    from api.auth import Role
    from api.passwords import hash_password

    parts = args.spec.split(":", 2)
    if len(parts) != 3 or not parts[0]:
        raise CliError("expected <username>:<role1,role2,...>:<password>")
    username, roles_text, password = parts
    roles = [r.strip() for r in roles_text.split(",") if r.strip()]
    known = {r.value for r in Role}
    unknown = [r for r in roles if r not in known]
    if unknown:
        raise CliError(f"unknown role(s) {', '.join(unknown)}; roles are {', '.join(sorted(known))}")
    if not password and roles != ["api"]:
        raise CliError("only API users may have an empty password")
    try:
        hashed = hash_password(password) if password else None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    data = {"username": username, "password": hashed, "roles": roles, "projects": [], "authSource": 0}
    _append_user_event(_settings(args), "user.created", data)
    print(f"user {username} added with roles {', '.join(roles)}")


def cmd_del_user(args: argparse.Namespace) -> None:
    """Remove a user."""
    _append_user_event(_settings(args), "user.deleted", {"username": args.username})
    print(f"user {args.username} deleted")


def _catch_up(settings: Settings) -> None:
    """Bring the job database up to date with the log (the server may not be running)."""
    from api.bootstrap import open_log
    from projections.db import writer_engine
    from projections.jobdb import JobDatabaseProjection
    from streams.runtime import AgentRunner

    log = open_log(settings)
    engine = writer_engine(settings.main.db)
    try:
        AgentRunner(log, JobDatabaseProjection(engine)).run_until_caught_up()
    finally:
        engine.dispose()
        log.close()


def cmd_jwt(args: argparse.Namespace) -> None:
    """Print a JWT for an existing user, with that user's roles."""
    from api.bootstrap import StartupError, build_authenticator
    from projections import queries
    from projections.db import reader_engine

    settings = _settings(args)
    _catch_up(settings)
    try:
        authenticator = build_authenticator(settings)
    except StartupError as exc:
        raise CliError(str(exc)) from None
    if authenticator is None:
        raise CliError("JWT_PUBLIC_KEY is not set: run `ccstream init`")
    engine = reader_engine(settings.main.db)
    try:
        with engine.connect() as conn:
            row = queries.find_user(conn, args.username)
    finally:
        engine.dispose()
    if row is None:
        raise CliError(f"no such user: {args.username}")
    roles = orjson.loads(row["roles"] or "[]")
    projects = orjson.loads(row["projects"] or "[]")
    try:
        print(authenticator.issue(args.username, roles, projects))
    except Exception as exc:
        raise CliError(f"cannot issue a token: {exc}") from None


def cmd_keygen(_args: argparse.Namespace) -> None:
    """Print a fresh Ed25519 key pair in .env format."""
    from api.keys import generate_keypair

    public, private = generate_keypair()
    print(f'JWT_PUBLIC_KEY="{public}"\nJWT_PRIVATE_KEY="{private}"')


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="ccstream", description="Job-specific performance monitoring for HPC.")
    parser.add_argument("--config", default=None, help="config.json to use (default ./config.json)")
    parser.add_argument("--env", default=".env", help="file with secrets (default ./.env)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=fn)
        return p

    p = add("init", cmd_init, "Create var/, config.json, .env with new keys, and the job archive.")
    p.add_argument("--force", action="store_true", help="overwrite config.json and .env")
    p.add_argument("--cluster", action="append", metavar="CLUSTER_JSON", help="install a cluster.json template")
    p = add("serve", cmd_serve, "Run the server (REST API, agents).")
    p.add_argument("--addr", default=None, help="host:port, overrides main.addr")
    p.add_argument("--dev", action="store_true", help="serve the OpenAPI UI at /swagger/")
    p = add("add-user", cmd_add_user, "Add a local user: name:role1,role2:password.")
    p.add_argument("spec", metavar="NAME:ROLES:PASSWORD")
    p = add("del-user", cmd_del_user, "Delete a user.")
    p.add_argument("username")
    p = add("jwt", cmd_jwt, "Print a JWT for a user.")
    p.add_argument("username")
    add("keygen", cmd_keygen, "Print a new Ed25519 key pair for .env.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.config_given = args.config is not None
    if args.config is None:
        args.config = "config.json"
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (CliError, ConfigError) as exc:
        print(f"ccstream: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
