"""The `ccstream` command: init, serve, users, tokens and keys. Errors are one line and a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from api.cli_common import CliError, catch_up, cli_settings
from api.cli_data import (
    cmd_archive_compress,
    cmd_archive_retire,
    cmd_import_archive,
    cmd_import_db,
    cmd_import_job,
    cmd_rejected_list,
    cmd_rejected_retry,
    cmd_replay,
)
from api.config import ConfigError, Settings, load_settings

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


#: Seconds a stopping server gives requests in flight before it closes their connections: SIGTERM and
#: SIGINT end the process within a few seconds whatever clients do (agents are bounded by agents.stop-timeout).
SHUTDOWN_GRACE = 3


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
    """Run the server until interrupted: bind, drop root (`main.user`/`main.group`), open everything, serve."""
    from api.app import create_app
    from api.bootstrap import StartupError, build_services
    from api.httpserver import http_protocol
    from api.privileges import PrivilegeError
    from api.redirect import RedirectError
    from api.scheduler import ArchiveMaintenance, check_job_tasks
    from api.serving import ServeError, serve

    settings = cli_settings(args)
    try:
        ArchiveMaintenance(settings)  # a bad archive.retention stops the start with its message
        check_job_tasks(settings)  # so do bad cron intervals and a bad main.nodestate-retention
    except ValueError as exc:
        raise CliError(str(exc)) from None
    # The event loop, the log writer and the agents share one interpreter lock; a shorter switch interval
    # lets the loop get it back sooner after each SQLite call (measured: ~20% more events/s).
    sys.setswitchinterval(0.0005)
    host, _, port = (args.addr or settings.main.addr).rpartition(":")
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise; the IP allow-list must see the
    # socket peer, so forwarded headers count only from the proxies named with --forwarded-allow-ips.
    proxies = args.forwarded_allow_ips
    try:
        serve(settings.main, host or "0.0.0.0", int(port), lambda: create_app(build_services(settings), dev=args.dev),
              log_level=args.log_level, access_log=False, proxy_headers=bool(proxies),
              forwarded_allow_ips=proxies or None, http=http_protocol(),
              timeout_graceful_shutdown=SHUTDOWN_GRACE)
    except (StartupError, PrivilegeError, RedirectError, ServeError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _append_user_event(settings: Settings, event_type: str, data: dict[str, object]) -> None:
    from api.bootstrap import open_log
    from streams.events import new_event
    from streams.ingest.requests import InvalidRequest, check_payload

    try:  # held to the payload model, as every route's events are, before anything is appended
        check_payload(event_type, 1, dict(data))
    except InvalidRequest as exc:
        raise CliError(str(exc)) from None
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
    _append_user_event(cli_settings(args), "user.created", data)
    print(f"user {username} added with roles {', '.join(roles)}")


def cmd_del_user(args: argparse.Namespace) -> None:
    """Remove a user."""
    _append_user_event(cli_settings(args), "user.deleted", {"username": args.username})
    print(f"user {args.username} deleted")


def cmd_jwt(args: argparse.Namespace) -> None:
    """Print a JWT for an existing user, with that user's roles."""
    from api.auth import parse_go_duration
    from api.bootstrap import StartupError, build_authenticator
    from projections import queries
    from projections.db import reader_engine

    settings = cli_settings(args)
    catch_up(settings)
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
        lifetime = None if args.valid_for is None else parse_go_duration(args.valid_for)
        print(authenticator.issue(args.username, roles, projects, lifetime))
    except Exception as exc:
        raise CliError(f"cannot issue a token: {exc}") from None


def cmd_metricstore(args: argparse.Namespace) -> None:
    """Run the metric store alone (cc-metric-store's API), for sites that scale it out."""
    from starlette.types import ASGIApp

    from api.auth import ApiAuth
    from api.bootstrap import StartupError, build_authenticator, build_metric_nats
    from api.metricstore_routes import create_metricstore_app
    from api.privileges import PrivilegeError
    from api.redirect import RedirectError
    from api.serving import ServeError, serve
    from metricstore.store import MetricStore
    from streams.clusters import ClusterRegistry

    settings = cli_settings(args)

    def build() -> ASGIApp:
        clusters = ClusterRegistry.load(Path(settings.archive.path))
        authenticator = build_authenticator(settings)
        store = MetricStore(settings.metric_store, clusters.clusters())
        subscriber = build_metric_nats(settings, store)
        auth = ApiAuth(authenticator, settings.main.api_allowed_ips, settings.main.disable_authentication)
        return create_metricstore_app(store, auth.dependency("api"), services=(subscriber,) if subscriber else (),
                                      settings=settings)

    host, _, port = (args.addr or settings.main.addr).rpartition(":")
    try:
        serve(settings.main, host or "127.0.0.1", int(port), build, log_level=args.log_level, access_log=False,
              proxy_headers=False, timeout_graceful_shutdown=SHUTDOWN_GRACE)
    except (StartupError, PrivilegeError, RedirectError, ServeError, ValueError) as exc:
        raise CliError(str(exc)) from None


def cmd_simulate(args: argparse.Namespace) -> None:
    """Drive a server as a cluster's scheduler adapter and node agents would."""
    from replay.simulator.cli import SimulationError
    from replay.simulator.cli import cmd_simulate as simulate

    try:
        simulate(args)
    except SimulationError as exc:
        raise CliError(str(exc)) from None


def cmd_demo(args: argparse.Namespace) -> None:
    """Set up a demo installation on first use, then serve it with live simulated clusters."""
    import asyncio

    import uvicorn

    from api.app import create_app
    from api.bootstrap import StartupError, build_authenticator, build_services
    from api.httpserver import DemoServer, http_protocol
    from replay.simulator.demo import (
        DEMO_PASSWORD,
        DEMO_ROLES,
        DEMO_USER,
        ensure_demo_user,
        ensure_history,
        live_cluster,
    )
    from replay.simulator.options import TEMPLATES

    args.force = False
    args.cluster = [str(p) for p in sorted(TEMPLATES.glob("*.json"))]
    cmd_init(args)
    settings = cli_settings(args)
    if ensure_demo_user(settings):
        print(f"demo administrator: user {DEMO_USER!r}, password {DEMO_PASSWORD!r}")
    written = ensure_history(settings, args.days, args.seed)
    if written:
        print(f"backfilled and imported {written} finished jobs ({args.days} days)")
    try:
        services = build_services(settings)
        authenticator = build_authenticator(settings)
    except StartupError as exc:
        raise CliError(str(exc)) from None
    if authenticator is None:
        raise CliError("the demo needs JWT keys: run `ccstream init`")
    host, _, port = (args.addr or settings.main.addr).rpartition(":")
    server = DemoServer(uvicorn.Config(create_app(services, dev=args.dev), host=host or "127.0.0.1", port=int(port),
                                       log_level=args.log_level, access_log=False, proxy_headers=False,
                                       http=http_protocol(), timeout_graceful_shutdown=SHUTDOWN_GRACE))
    token = authenticator.issue(DEMO_USER, DEMO_ROLES)
    print(f"ccstream demo on http://{host or '127.0.0.1'}:{port}")
    print(f"a token of {DEMO_USER!r} (roles {', '.join(DEMO_ROLES)}) for the API: {token}")
    adapter_token = authenticator.issue(DEMO_USER, ["api"])  # what a scheduler adapter holds: the api role only

    async def caught_up() -> bool:
        return await services.runner.wait_for_async(services.log.head(), 600.0)

    async def serve_with_live_cluster() -> None:
        live = asyncio.create_task(live_cluster(settings, f"http://127.0.0.1:{port}", adapter_token, args.seed,
                                                caught_up))

        def stop_live() -> None:  # in the signal handler, on the loop's thread: cancel on the loop's next turn
            asyncio.get_running_loop().call_soon(live.cancel)

        server.on_exit = stop_live
        await server.serve()

    sys.setswitchinterval(0.0005)
    asyncio.run(serve_with_live_cluster())


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
    p.add_argument("--forwarded-allow-ips", default=None, metavar="IPS",
                   help="comma-separated addresses of reverse proxies whose X-Forwarded-For/-Proto are "
                        "trusted (default: none; the client is the socket peer)")
    p = add("add-user", cmd_add_user, "Add a local user: name:role1,role2:password.")
    p.add_argument("spec", metavar="NAME:ROLES:PASSWORD")
    p = add("del-user", cmd_del_user, "Delete a user.")
    p.add_argument("username")
    p = add("jwt", cmd_jwt, "Print a JWT for a user.")
    p.add_argument("username")
    p.add_argument("--valid-for", default=None, metavar="DURATION",
                   help="lifetime as a Go duration, e.g. 8760h (default auth.jwts.max-age, else 2000h)")
    add("keygen", cmd_keygen, "Print a new Ed25519 key pair for .env.")
    p = add("metricstore", cmd_metricstore, "Run the metric store alone (cc-metric-store's API, NATS ingest).")
    p.add_argument("--addr", default=None, help="host:port, overrides main.addr")
    from replay.simulator.options import configure as configure_simulate

    configure_simulate(add("simulate", cmd_simulate, "Simulate clusters against a running server (REST/NATS)."))
    p = add("demo", cmd_demo, "Demo: set up once (config, clusters, user, history), serve with live clusters.")
    p.add_argument("--addr", default=None, help="host:port, overrides main.addr")
    p.add_argument("--days", type=float, default=3.0, help="days of finished jobs to backfill on first run")
    p.add_argument("--seed", type=int, default=1, help="random seed of history and live clusters")
    p.add_argument("--dev", action="store_true", help="serve the OpenAPI UI at /swagger/")
    p = add("import-archive", cmd_import_archive, "Import an existing job archive into the event log.")
    p.add_argument("source", nargs="?", metavar="PATH|s3://BUCKET/PREFIX",
                   help="archive directory, s3:// location or SQLite archive file (default: the configured archive)")
    p = add("import-db", cmd_import_db, "Import jobs, tags and users of a cc-backend job.db (schema 10 or 11).")
    p.add_argument("database", metavar="JOB_DB")
    p = add("import-job", cmd_import_job, "Archive and import single jobs: meta.json:data.json[,...].")
    p.add_argument("jobs", nargs="+", metavar="META_JSON:DATA_JSON")
    for name in ("import-archive", "import-db", "import-job"):
        p = sub.choices[name]
        p.add_argument("--batch", type=int, default=5000, help="jobs per append (default 5000)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--verbose", action="store_true", help="print every error and warning")
        p.add_argument("--strict", action="store_true", help="exit 1 when any job could not be imported")
    rejected = sub.add_parser("rejected", help="Refused NATS messages: list, retry.",
                              description="Refused NATS messages (the dead-letter store).")
    rejected_sub = rejected.add_subparsers(dest="rejected_command", required=True, metavar="ACTION")
    p = rejected_sub.add_parser("list", help="List refused messages (open ones by default).")
    p.add_argument("--all", action="store_true", help="include resolved ones")
    p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_rejected_list)
    p = rejected_sub.add_parser("retry", help="Run a refused message through the intake again.")
    p.add_argument("id", type=int, help="id from `ccstream rejected list`")
    p.set_defaults(func=cmd_rejected_retry)
    add("archive-compress", cmd_archive_compress,
        "Gzip data.json of archived jobs older than archive.compression days (default 7), now.")
    add("archive-retire", cmd_archive_retire,
        "Apply archive.retention (delete, copy or move old jobs) now instead of at its nightly hour.")
    for name in ("archive-compress", "archive-retire"):
        p = sub.choices[name]
        p.add_argument("--dry-run", action="store_true", help="change nothing; count what a run would do")
        p.add_argument("--verbose", action="store_true", help="print every failure")
    from api.cli_agents import configure as configure_agents

    configure_agents(sub)
    from replay.cli import configure as configure_replay

    configure_replay(add("replay", cmd_replay, "Rebuild, verify, time-travel read models; export, import the log."))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.config_given = args.config is not None
    if args.config is None:
        args.config = "config.json"
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns everything else
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
