"""The one path policy: every name or path a client sends passes here before it can become a key.

Names are NFC-normalised *first* and checked afterwards, so a form that would change under
normalisation cannot pass the check and change later. Every key is a path (``validate_path``):
``segment/segment/…``, relative, canonical (no empty, ``.`` or ``..`` segment), without backslashes,
control characters, bidirectional overrides, surrogates or U+FFFD, at most ``MAX_PATH_BYTES`` UTF-8
bytes, and with no segment whose compatibility form (NFKC) is ``.`` or ``..`` or holds a separator:
``．．`` (fullwidth full stops) or ``a／b`` (fullwidth solidus) would turn into ``..`` or ``a/b`` in any
tool that applies NFKC.

Paths that become file and folder names on people's disks (the workspace: downloads, zips) are also
*portable* (``validate_portable_path``): every segment at most ``MAX_SEGMENT_BYTES``, and none ending
in a dot or a space, which Windows drops (``a.`` and ``a`` would be one file there).

In the workspace's bucket a path is also never both a file and a folder (``folder_clash``): the
metadata store refuses either as it commits, whichever face writes.

A filename given by a client is not validated but *sanitised* to one portable segment: its last
component (after any separator or look-alike), without characters a segment may not hold, trimmed,
shortened to ``MAX_SEGMENT_BYTES`` keeping its extension.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from .errors import Conflict, InvalidInput

WORKSPACE_BUCKET = "workspace"
"""The bucket of files in folders (``core.workspace``), where a key is not both a file and a folder
(``folder_clash``), whichever face writes it."""
MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 1024
MAX_EXTENSION_BYTES = 16

# Control characters (C0, DEL, C1), surrogates, U+FFFD, and the bidirectional controls that make
# "evil\u202etxt.exe" display as "evilexe.txt".
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffd\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Separators and the characters whose compatibility form (NFKC) contains one (℀ → "a/c", ／ → "/").
_SEPARATORS = re.compile("[/\\\\\u2100\u2101\u2105\u2106\ufe68\uff0f\uff3c]")


def _segment_problem(segment: str) -> str | None:
    """Why an NFC segment may not be part of any path, or None."""
    if segment == "":
        return "empty segments ('//', a leading or trailing '/') are not allowed"
    if segment in (".", ".."):
        return f"'{segment}' segments are not allowed"
    if "\\" in segment:
        return "backslashes are not allowed"
    if (bad := _FORBIDDEN.search(segment)) is not None:
        return f"the character U+{ord(bad.group()):04X} is not allowed"
    compatible = unicodedata.normalize("NFKC", segment)
    if "/" in compatible or "\\" in compatible:
        return f"'{segment}' contains a character that stands for a separator"
    if compatible in (".", ".."):
        return f"'{segment}' stands for '{compatible}'"
    return None


def _portable_problem(segment: str) -> str | None:
    """Why a valid segment is not a portable file name, or None."""
    if unicodedata.normalize("NFKC", segment).endswith((".", " ")):
        return f"'{segment}' ends in a dot or a space"
    if len(segment.encode()) > MAX_SEGMENT_BYTES:
        return f"a segment may be at most {MAX_SEGMENT_BYTES} UTF-8 bytes"
    return None


def validate_path(raw: str, *, param: str) -> str:
    """The NFC form of a relative path such as ``runs/42/out.csv`` or ``docs/数据/spec.pdf``, or
    ``InvalidInput`` naming ``param`` and the rule it breaks."""
    return _validated(raw, param, (_segment_problem,))


def validate_path_prefix(raw: str, *, param: str) -> str:
    """The NFC form of the start of a path (``docs/``, ``docs/数``): a listing prefix. It may end inside a
    segment, so only what no path can hold is refused: a leading '/', a backslash, a forbidden character,
    more than ``MAX_PATH_BYTES``."""
    prefix = unicodedata.normalize("NFC", raw)
    if prefix.startswith("/"):
        problem: str | None = "a prefix is relative: it may not start with '/'"
    elif len(prefix.encode(errors="surrogatepass")) > MAX_PATH_BYTES:
        problem = f"a prefix may be at most {MAX_PATH_BYTES} UTF-8 bytes"
    elif "\\" in prefix:
        problem = "backslashes are not allowed"
    elif (bad := _FORBIDDEN.search(prefix)) is not None:
        problem = f"the character U+{ord(bad.group()):04X} is not allowed"
    else:
        problem = None
    if problem is not None:
        raise InvalidInput(f"Invalid {param}: {problem}.", param=param)
    return prefix


def validate_portable_path(raw: str, *, param: str) -> str:
    """``validate_path``, and every segment a portable file name."""
    return _validated(raw, param, (_segment_problem, _portable_problem))


def _validated(raw: str, param: str, rules: tuple[Callable[[str], str | None], ...]) -> str:
    path = unicodedata.normalize("NFC", raw)
    if path.startswith("/"):
        problem: str | None = "absolute paths are not allowed"
    elif len(path.encode(errors="surrogatepass")) > MAX_PATH_BYTES:
        problem = f"a path may be at most {MAX_PATH_BYTES} UTF-8 bytes"
    else:
        problem = next((p for segment in path.split("/") for rule in rules if (p := rule(segment))), None)
    if problem is not None:
        raise InvalidInput(f"Invalid {param}: {problem}.", param=param)
    return path


def enclosing_folders(key: str) -> list[str]:
    """The folders a key lies in, outermost first: the file ``a/b/c`` and the marker ``a/b/`` of the
    folder ``a/b`` both lie in ``a`` and ``a/b``."""
    segments = key.split("/")
    return ["/".join(segments[:depth]) for depth in range(1, len(segments))]


def folder_clash(key: str, existing: str) -> Conflict:
    """Why the workspace refuses ``key`` beside ``existing``: a file where a folder is (``existing`` lies
    under ``key``), or a key under a file (``existing`` is one of ``enclosing_folders(key)``)."""
    if existing.startswith(key + "/"):
        return Conflict(f"'{key}' is a folder; a file cannot take its place.", param="key")
    return Conflict(f"'{existing}' is a file; '{key.removesuffix('/')}' cannot be in it.", param="key")


def sanitize_filename(raw: str, *, param: str = "filename") -> str:
    """Reduce a client-supplied filename to one safe segment (see the module docstring). Raises
    ``InvalidInput`` when nothing usable is left, or when the name is not valid UTF-8 (U+FFFD)."""
    name = unicodedata.normalize("NFC", raw)
    if "\ufffd" in name:
        raise InvalidInput("The filename is not valid UTF-8.", param=param)
    name = _trim(_FORBIDDEN.sub("", _SEPARATORS.split(name)[-1]))
    encoded = name.encode()
    if len(encoded) > MAX_SEGMENT_BYTES:
        stem, dot, extension = name.rpartition(".")
        keep = dot + extension if stem and len((dot + extension).encode()) <= MAX_EXTENSION_BYTES else ""
        budget = MAX_SEGMENT_BYTES - len(keep.encode())
        name = _trim(name[: len(name) - len(keep)].encode()[:budget].decode(errors="ignore")) + keep
    if _segment_problem(name) is not None or _portable_problem(name) is not None:
        raise InvalidInput("The filename is empty or not a file name.", param=param)
    return name


def _trim(name: str) -> str:
    """Without surrounding whitespace and trailing dots (or characters whose NFKC form is a dot)."""
    name = name.strip()
    while name and unicodedata.normalize("NFKC", name[-1]).rstrip(". ") == "":
        name = name[:-1].rstrip()
    return name
