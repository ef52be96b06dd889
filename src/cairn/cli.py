"""``cairn serve | keys | upload | migrate | doctor``. Server flags become ``CAIRN_*`` variables so that every
worker sees them. Each command imports what it needs itself, so that `cairn upload` starts at once."""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from . import __version__
from .core.auth import is_loopback_host
from .core.errors import CairnError
from .settings import ConfigFileError, Settings, describe_settings, source_hint


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cairn", description="Cairn: files and conversations for AI agents."
    )
    parser.add_argument("--version", action="version", version=f"cairn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="address to listen on (CAIRN_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (CAIRN_PORT, default 8321)")
    serve.add_argument("--data-dir", help="data directory (CAIRN_DATA_DIR, default ./cairn-data)")
    serve.add_argument("--workers", type=int, help="server processes (CAIRN_WORKERS, default 1)")
    serve.add_argument("--config", help="TOML config file (CAIRN_CONFIG)")

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key for a tenant and print it once")
    create.add_argument("--tenant", required=True)
    keys.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    for sub in (create, revoke, keys.choices["list"]):
        sub.add_argument("--data-dir", help="data directory (CAIRN_DATA_DIR)")
        sub.add_argument("--config", help="TOML config file (CAIRN_CONFIG)")

    upload = commands.add_parser(
        "upload",
        help="upload a file in resumable chunks (run again to resume)",
        description="Upload PATH through tus in chunks with a progress bar. Without --bucket/--key it "
        "becomes a Files API file. Interrupted? Run the same command again: it resumes at the server's "
        "offset.",
    )
    upload.add_argument("path", type=Path)
    upload.add_argument("--bucket", help="bucket of the object (with --key)")
    upload.add_argument("--key", help="key of the object in the bucket (with --bucket)")
    upload.add_argument("--purpose", help="Files API purpose (default user_data)")
    upload.add_argument("--mime-type", help="media type (default: guessed from the name)")
    upload.add_argument(
        "--server", default=os.environ.get("CAIRN_URL", "http://127.0.0.1:8321"), help="(CAIRN_URL)"
    )
    upload.add_argument("--api-key", default=os.environ.get("CAIRN_API_KEY"), help="(CAIRN_API_KEY)")
    upload.add_argument("--chunk-mib", type=int, default=8, help="MiB per request (default 8)")

    migrate = commands.add_parser(
        "migrate",
        help="copy an embedded install into the configured database and blob store",
        description="Copy the API keys and live objects of an embedded install (SQLite and blobs in a data "
        "directory) into the database and blob store that CAIRN_DATABASE_URL, CAIRN_BLOB_STORE and "
        "CAIRN_S3_* name. Stopped? Run the same command again: it copies only what the target lacks.",
    )
    migrate.add_argument(
        "--from-data-dir", type=Path, help="the embedded install's data directory (default: CAIRN_DATA_DIR)"
    )
    migrate.add_argument("--jobs", type=int, default=4, help="objects copied at once (default 4)")
    migrate.add_argument("--config", help="TOML config file (CAIRN_CONFIG)")

    doctor = commands.add_parser(
        "doctor",
        help="show every setting, its value and where it came from",
        description="Print each effective setting (secrets masked) and its source: default, env CAIRN_X, "
        "config <file>, or argument.",
    )
    doctor.add_argument("--data-dir", help="data directory (CAIRN_DATA_DIR)")
    doctor.add_argument("--config", help="TOML config file (CAIRN_CONFIG)")
    return parser


def _apply_flags(args: argparse.Namespace) -> Settings:
    for flag in ("host", "port", "data_dir", "workers", "config"):
        value = getattr(args, flag, None)
        if value is not None:
            os.environ[f"CAIRN_{flag.upper()}"] = str(value)
    return Settings()


async def _with_keys(settings: Settings, action: str, args: argparse.Namespace) -> int:
    from .compose import composed

    async with composed(settings) as composition:
        keys = composition.services.api_keys
        if action == "create":
            key, record = await keys.create(args.tenant)
            print(f"Created key {record.id} for tenant '{record.tenant}'. It is shown only this once:")
            print(key)
        elif action == "list":
            for record in await keys.list():
                state = "revoked" if record.revoked_at else "active"
                created = datetime.fromtimestamp(record.created_at, UTC).isoformat()
                print(f"{record.id}\t{record.tenant}\t{state}\t{created}")
        elif action == "revoke":
            if not await keys.revoke(args.key_id):
                print(f"No active key with id {args.key_id}.", file=sys.stderr)
                return 1
            print(f"Revoked key {args.key_id}.")
    return 0


async def _has_keys(settings: Settings) -> bool:
    from .compose import composed

    async with composed(settings) as composition:
        return await composition.key_rows.has_api_keys()


def _serve(settings: Settings) -> int:
    from .server import serve

    settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
    if not is_loopback_host(settings.server.host) and not asyncio.run(_has_keys(settings)):
        data_dir = settings.storage.data_dir.resolve()
        where = f"the data directory {data_dir}"
        if settings.storage.database_url:
            where = "the database of CAIRN_DATABASE_URL"
        print(
            f"Refusing to listen on {settings.server.host}: {where} holds no API key, so anyone could read "
            f"and write files. Keys live with the data: create one with 'cairn keys create --tenant NAME "
            f"--data-dir {data_dir}' (the same --data-dir or CAIRN_DATA_DIR as 'cairn serve'), or listen "
            "on 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    serve(settings)
    return 0


def _upload(args: argparse.Namespace) -> int:
    import httpx

    from .upload_client import Interrupted, Target, UploadFailed, upload

    if (args.bucket is None) != (args.key is None) or (args.bucket and args.purpose):
        print("error: give --bucket and --key together, or --purpose, not both", file=sys.stderr)
        return 2
    if not args.path.is_file() or args.chunk_mib < 1:
        print(
            f"error: {args.path} is not a file" if args.chunk_mib >= 1 else "error: --chunk-mib < 1",
            file=sys.stderr,
        )
        return 2
    try:
        headers = upload(
            args.path,
            server=args.server.rstrip("/"),
            target=Target(bucket=args.bucket, key=args.key, purpose=args.purpose),
            api_key=args.api_key,
            mime_type=args.mime_type or mimetypes.guess_type(args.path.name)[0],
            chunk_bytes=args.chunk_mib << 20,
        )
    except Interrupted as stop:  # Ctrl-C: one line, no traceback; the exit status a shell gives SIGINT
        print(
            f"Interrupted at byte {stop.offset:,} of {stop.size:,}. Run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    except (UploadFailed, httpx.HTTPError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    file_url = httpx.URL(args.server).join(headers.get("cairn-file-url", ""))
    print(headers.get("cairn-file-id", ""), file_url, sep="\t")
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from .migrate import MigrationRefused, migrate

    if args.jobs < 1:
        print("error: --jobs < 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(migrate(settings, args.from_data_dir or settings.storage.data_dir, jobs=args.jobs))
    except MigrationRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted. Run the same command again to resume.", file=sys.stderr)
        return 130


def _doctor(settings: Settings) -> int:
    """The effective settings and where each came from, what the composer builds on them, and whether
    each dependency and inference provider answers; exit 1 if one does not."""
    _table([("setting", "value", "source"), *describe_settings(settings)])
    composition, checks = asyncio.run(_composed(settings))
    print()
    _table([("composed", "", ""), *((what, which, "") for what, which in composition)])
    print()
    _table([("dependency", "answers", ""), *((name, answer, "") for name, answer in checks.items())])
    return 0 if all(answer == "ok" for answer in checks.values()) else 1


async def _composed(settings: Settings) -> tuple[list[tuple[str, str]], dict[str, str]]:
    from .compose import composed
    from .core.health import check_all, check_providers

    async with composed(settings, migrate=False) as composition:
        services = composition.services
        checks = await check_all(services.probes)
        providers = await check_providers(services.inference.catalog.providers.values())
        checks.update((f"provider {provider}", answer) for provider, answer in providers.items())
        return composition.describe(), checks


def _table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in (0, 1)]
    for first, second, third in rows:
        print(f"{first:<{widths[0]}}  {second:<{widths[1]}}  {third}".rstrip())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "upload":
        return _upload(args)
    try:
        settings = _apply_flags(args)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "migrate":
            return _migrate(settings, args)
        if args.command == "doctor":
            return _doctor(settings)
        return asyncio.run(_with_keys(settings, args.keys_command, args))
    except CairnError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except ConfigFileError as exc:  # CAIRN_CONFIG names a missing or malformed file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a CAIRN_* setting or config file value that does not parse
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "settings"
            source = source_hint(".".join(str(part) for part in error["loc"][:2]))
            print(f"error: {where}{f' ({source})' if source else ''}: {error['msg']}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
