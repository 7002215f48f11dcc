"""The `voicegw` command line: serve, dev, migrate (and the metering commands).

Exit codes: 0 success, 1 a runtime failure, 2 a configuration or usage problem.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from gateway.config import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print("voicegw: configuration problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.metrics import multiprocess_dir, worker_exited
    from gateway.runner import install_uvloop

    settings = _settings_or_exit()
    configure_logging(settings.log_level, secrets=_secret_values(settings))
    install_uvloop()
    workers = max(1, args.workers)
    if workers > 1:
        # Metrics of all workers add up in one scrape through files in a private dir.
        with multiprocess_dir() as path:
            return _fork_workers(workers, lambda: _serve_one(settings),
                                 on_exit=lambda pid: worker_exited(pid, path))
    _serve_one(settings)
    return 0


def _serve_one(settings: Settings) -> None:
    from gateway.runner import serve_until_stopped

    asyncio.run(serve_until_stopped(settings, reuse_port=True))


def _fork_workers(count: int, serve: Callable[[], None],
                  on_exit: Callable[[int], None] | None = None) -> int:
    """N processes sharing the port via SO_REUSEPORT; the parent waits for them all.

    Each worker has its own process group, so a Ctrl-C in the terminal reaches the parent
    only; the parent passes SIGINT and SIGTERM on to every live worker as SIGTERM (a
    graceful stop; a second signal stops them at once). `on_exit` is told each worker's
    pid once it has exited."""
    children: list[int] = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                os.setpgid(0, 0)
                serve()
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    alive = set(children)

    def forward(signum: int, frame: object) -> None:
        for child in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        for pid in children:
            _, code = os.waitpid(pid, 0)  # retried by Python after a forwarded signal
            alive.discard(pid)
            if on_exit is not None:
                on_exit(pid)
            status = status or os.waitstatus_to_exitcode(code)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _secret_values(settings: Settings) -> list[str]:
    from gateway.config import SECRETS

    return [str(getattr(settings, name)) for name in SECRETS if getattr(settings, name)]


def cmd_dev(args: argparse.Namespace) -> int:
    from gateway.devmode import run_dev

    return run_dev(data_dir=args.data_dir)


def cmd_migrate(args: argparse.Namespace) -> int:
    from metering.migrate import migrate_url

    url = os.environ.get("VOICEGW_DATABASE_URL", "")
    if not url:
        print("voicegw: configuration problems:\n  VOICEGW_DATABASE_URL: missing", file=sys.stderr)
        return EXIT_CONFIG
    applied = asyncio.run(migrate_url(url))
    print(f"applied migrations: {applied}" if applied else "schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicegw",
        description="Real-time voice-agent gateway with prepaid-credit metering.",
        epilog="Settings come from VOICEGW_* environment variables; see README.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the gateway in production (needs Redis and PostgreSQL URLs)",
        description="Run the gateway. Requires VOICEGW_REDIS_URL, VOICEGW_DATABASE_URL, "
        "VOICEGW_PUBLIC_URL and VOICEGW_ADMIN_TOKEN. Applies pending migrations at start.",
    )
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes sharing the port (default 1)")
    serve.set_defaults(func=cmd_serve)

    dev = commands.add_parser(
        "dev", help="run everything locally on embedded Redis and PostgreSQL",
        description="Start embedded Redis and PostgreSQL (data in ./.voicegw/), apply "
        "migrations, start vendor emulators for vendors without a key, create a demo "
        "tenant, print the credentials and serve until Ctrl-C. Every VOICEGW_* setting "
        "that is set is honoured.",
    )
    dev.add_argument("--data-dir", default=".voicegw", help="where data lives (default .voicegw)")
    dev.set_defaults(func=cmd_dev)

    migrate = commands.add_parser(
        "migrate", help="apply pending database migrations",
        description="Apply pending SQL migrations to VOICEGW_DATABASE_URL (idempotent).",
    )
    migrate.set_defaults(func=cmd_migrate)

    from gateway.cli_metering import add_metering_commands

    add_metering_commands(commands)
    from gateway.cli_billing import add_billing_commands

    add_billing_commands(commands)
    from gateway.cli_tariffs import add_tariff_commands

    add_tariff_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
