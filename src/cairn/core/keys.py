"""The key and name policy shared by every face.

Names from clients are normalised (NFC) *before* they are checked, so look-alike forms cannot slip past
a check and change afterwards. A client-supplied filename is metadata only and never becomes a path.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidInput

MAX_FILENAME_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
