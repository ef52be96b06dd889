"""The key and name policy shared by every face.

Names from clients are normalised (NFC) *before* they are checked, so look-alike forms cannot slip past
a check and change afterwards. A client-supplied filename is metadata only and never becomes a path.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidInput

MAX_FILENAME_BYTES = 255
MAX_MIME_TYPE_CHARS = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MIME_TYPE = re.compile(
    r"[A-Za-z0-9][\w!#$&^.+-]{0,126}/[A-Za-z0-9][\w!#$&^.+-]{0,126}(?: *;[\x20-\x7e]*)?", re.ASCII
)


def sanitize_filename(raw: str) -> str:
    """Reduce a client-supplied filename to one safe segment: its last path component, NFC-normalised,
    without control characters, at most 255 UTF-8 bytes. Raises ``InvalidInput`` when nothing is left."""
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]
    name = _CONTROL.sub("", name).strip()
    if "\ufffd" in name:
        raise InvalidInput("The filename is not valid UTF-8.", param="filename")
    if name in ("", ".", ".."):
        raise InvalidInput("The filename is empty or not a file name.", param="filename")
    encoded = name.encode()
    if len(encoded) > MAX_FILENAME_BYTES:
        _, dot, ext = name.rpartition(".")
        keep_ext = dot + ext if dot and len((dot + ext).encode()) <= 16 else ""
        budget = MAX_FILENAME_BYTES - len(keep_ext.encode())
        name = (name[: -len(keep_ext)] if keep_ext else name).encode()[:budget].decode(
            errors="ignore"
        ) + keep_ext
    return name


def clean_mime_type(declared: str | None) -> str | None:
    """A client-declared media type if it is a well-formed ``type/subtype`` (optionally with printable
    ASCII parameters) of at most 255 characters, else None. It is echoed as a response header and stored
    in a bounded column, so anything else (control characters, non-ASCII, overlong) is dropped."""
    value = (declared or "").strip()
    if len(value) <= MAX_MIME_TYPE_CHARS and _MIME_TYPE.fullmatch(value):
        return value
    return None


MAX_KEY_CHARS = 1024
_KEY = re.compile(r"[A-Za-z0-9_.\-/]{1,1024}", re.ASCII)


def validate_key(key: str, *, reserved: tuple[str, ...] = ()) -> str:
    """An object key such as ``runs/42/out.csv``: ``a-zA-Z0-9_-./`` only, no empty, ``.`` or ``..``
    segment, no leading or trailing ``/``, and a first segment that is not one of ``reserved``."""
    segments = key.split("/")
    if (
        not _KEY.fullmatch(key)
        or any(segment in ("", ".", "..") for segment in segments)
        or segments[0] in reserved
    ):
        rule = (
            "Keys are 1-1024 characters of a-z, A-Z, 0-9, '_', '-', '.' and '/', without empty, '.' or '..' "
            "segments or a leading or trailing '/'"
        )
        if reserved:
            rule += f"; the first segment may not be {' or '.join(repr(r) for r in reserved)}"
        raise InvalidInput(rule + ".", param="key")
    return key


_BUCKET = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)


def validate_bucket(name: str) -> str:
    """A bucket name: 1-64 characters of ``a-zA-Z0-9_-``."""
    if not _BUCKET.fullmatch(name):
        raise InvalidInput("Bucket names are 1-64 characters of a-z, A-Z, 0-9, '_' and '-'.", param="bucket")
    return name
