"""Object keys, bucket names and media types, on top of the one path policy (``core.paths``).

Every key is a path by that policy: Unicode (NFC), relative, canonical, bounded. A face may narrow it:
the Artifacts API keeps the ASCII keys it always had (``validate_key``); the workspace writes only
portable paths (``paths.validate_portable_path``); the buckets take any key the policy allows
(``validate_object_key``), so every workspace file and every artifact is also a bucket object. Keys
compare bytewise (code point order) on every metadata backend, which is what makes ``prefix_end`` a
range bound.
"""

from __future__ import annotations

import re

from .errors import InvalidInput
from .paths import MAX_SEGMENT_BYTES, sanitize_filename, validate_path

__all__ = [
    "BUCKET_PATTERN",
    "MAX_FILENAME_BYTES",
    "OBJECT_ID_PREFIX",
    "clean_mime_type",
    "prefix_end",
    "sanitize_filename",
    "validate_bucket",
    "validate_key",
    "validate_object_key",
]

MAX_FILENAME_BYTES = MAX_SEGMENT_BYTES
MAX_MIME_TYPE_CHARS = 255
_MIME_TYPE = re.compile(
    r"[A-Za-z0-9][\w!#$&^.+-]{0,126}/[A-Za-z0-9][\w!#$&^.+-]{0,126}(?: *;[\x20-\x7e]*)?", re.ASCII
)
_ASCII_KEY = re.compile(r"[A-Za-z0-9_.\-/]{1,1024}", re.ASCII)
_LAST_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def clean_mime_type(declared: str | None) -> str | None:
    """A client-declared media type if it is a well-formed ``type/subtype`` (optionally with printable
    ASCII parameters) of at most 255 characters, else None. It is echoed as a response header and stored
    in a bounded column, so anything else (control characters, non-ASCII, overlong) is dropped."""
    value = (declared or "").strip()
    if len(value) <= MAX_MIME_TYPE_CHARS and _MIME_TYPE.fullmatch(value):
        return value
    return None


def validate_object_key(key: str, *, param: str = "key") -> str:
    """Any key the path policy allows, such as ``报告/2024 Q1.pdf``, in its NFC form."""
    return validate_path(key, param=param)


def validate_key(key: str, *, reserved: tuple[str, ...] = ()) -> str:
    """An Artifacts key such as ``runs/42/out.csv``: the path policy narrowed to ``a-zA-Z0-9_-./``, with
    a first segment that is not one of ``reserved``."""
    if not _ASCII_KEY.fullmatch(key) or key.split("/")[0] in reserved:
        rule = (
            "Keys are 1-1024 characters of a-z, A-Z, 0-9, '_', '-', '.' and '/', without empty, '.' or '..' "
            "segments or a leading or trailing '/'"
        )
        if reserved:
            rule += f"; the first segment may not be {' or '.join(repr(r) for r in reserved)}"
        raise InvalidInput(rule + ".", param="key")
    return validate_object_key(key)


def prefix_end(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (None: no bound), so that
    ``prefix <= key < prefix_end(prefix)`` selects exactly the keys under ``prefix``."""
    while prefix:
        following = ord(prefix[-1]) + 1
        if following in _SURROGATES:  # not encodable: the next character is the first after them
            following = _SURROGATES.stop
        if following <= _LAST_CODE_POINT:
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None


OBJECT_ID_PREFIX = "file-"
"""Every object id starts with it and no bucket name does, so the first segment of a path under
``/v1/files/`` says which it names: a bucket (``api.bucket_files``) or a file (OpenAI's Files API)."""
BUCKET_PATTERN = rf"(?!{OBJECT_ID_PREFIX})[A-Za-z0-9_-]{{1,64}}"
"""A bucket name, as a regular expression (routes match path segments with it)."""
_BUCKET = re.compile(BUCKET_PATTERN, re.ASCII)


def validate_bucket(name: str) -> str:
    """A bucket name: 1-64 characters of ``a-zA-Z0-9_-``, not starting as object ids do."""
    if not _BUCKET.fullmatch(name):
        raise InvalidInput(
            "Bucket names are 1-64 characters of a-z, A-Z, 0-9, '_' and '-', and do not start with "
            f"'{OBJECT_ID_PREFIX}' (file ids do).",
            param="bucket",
        )
    return name
