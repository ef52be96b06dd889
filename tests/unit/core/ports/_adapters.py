"""Contract tests: one module per port of ``cairn.core.ports``, each test one promise of the port's
docstrings, run on every adapter of the port. This module says which adapters a module runs on; each is
built the way the composer builds it for the server, by the ``composition`` fixture on the backend set
(``tests/conftest.py``) that chooses it."""

from __future__ import annotations

import secrets

import pytest

BACKEND_OF = {
    "local": "sqlite+local",  # LocalBlobStore, as blobs and as upload staging
    "s3": "postgres+s3",  # S3BlobStore, and S3SessionStaging under PostgreSQL locks
    "sqlite": "sqlite+local",  # the SQL row stores on SQLite
    "postgres": "postgres+local",  # the SQL row stores on PostgreSQL
}


def on(*adapters: str) -> pytest.MarkDecorator:
    """Run every test of a module once per adapter: the ``backend`` fixture, given the set that
    composes it."""
    return pytest.mark.parametrize(
        "backend", [BACKEND_OF[name] for name in adapters], ids=list(adapters), indirect=True
    )


def session_id() -> str:
    return "upload-" + secrets.token_hex(16)
