"""Read an ``--acls`` value: the JSON itself, a file name, or a ``file://`` URL.

Owns :func:`resolve_acls`, which every process's composition root calls at start: it
returns the ACLs as JSON text (what the process keeps in its configuration and shows
in ``/flags``, as Mesos does) after parsing them, so a bad file stops the process with a
:class:`~mesoslite.config_checks.ConfigError` naming the flag, the file and the JSON
path at fault.
"""

from __future__ import annotations

from mesoslite.authz.acls import AclError, is_inline, parse_acls
from mesoslite.config_checks import ConfigError

#: Largest ACL file read (bytes).
MAX_ACLS_SIZE = 4 * 1024 * 1024


def resolve_acls(value: str, field: str = "acls") -> str:
    """``value`` as validated ACL JSON text ("" stays ""); ConfigError naming ``field``."""
    if not value.strip():
        return ""
    if is_inline(value):
        text, source = value, "the JSON given"
    else:
        path = value.removeprefix("file://")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(MAX_ACLS_SIZE + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(field, "a JSON ACL document, or the name of a file holding one",
                              value, detail=f"cannot read it: {exc}") from None
        if len(text) > MAX_ACLS_SIZE:
            raise ConfigError(field, f"an ACL file of at most {MAX_ACLS_SIZE} bytes", value)
        source = path
    try:
        parse_acls(text)
    except AclError as exc:
        raise ConfigError(field, f"{source}: {exc} (Mesos ACL JSON; see "
                                 "docs/acls.example.json)") from None
    return text
