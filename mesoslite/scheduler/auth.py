"""How a framework proves who it is to the master: credential and CURVE keys from files.

Owns: :func:`link_options` (and :func:`link_options_from_env`), the ``credential=``
and ``curve=`` arguments of :class:`~mesoslite.scheduler.SchedulerDriver` built from
the usual flags
(Marathon's ``--mesos_authentication_principal`` / ``--mesos_authentication_secret_file``,
and a CURVE key pair plus the master's public key).  Secrets are read from files,
never from flags or URLs (which show in process lists), and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from mesoslite.protocol import Credential
from mesoslite.transport import CurveClientKeys


def read_secret_file(path: str, flag: str) -> str:
    """The secret in ``path`` (surrounding whitespace dropped); ValueError naming ``flag``."""
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{flag} {path}: cannot read it ({exc})") from None
    if not secret:
        raise ValueError(f"{flag} {path}: the file is empty")
    return secret


def link_options(*, principal: str = "", secret_file: str = "", curve_secret_file: str = "",
                 master_public_key_file: str = "") -> dict[str, Any]:
    """``SchedulerDriver`` keyword arguments (``credential``, ``curve``) for these settings.

    ValueError naming the flag when one is given without its partner or a file is bad.
    """
    options: dict[str, Any] = {}
    if bool(principal) != bool(secret_file):
        flag = "--mesos_authentication_secret_file" if principal else \
            "--mesos_authentication_principal"
        raise ValueError(f"{flag}: expected with the other of "
                         "--mesos_authentication_principal/--mesos_authentication_secret_file")
    if principal:
        secret = read_secret_file(secret_file, "--mesos_authentication_secret_file")
        options["credential"] = Credential(principal, secret)
    if bool(curve_secret_file) != bool(master_public_key_file):
        raise ValueError("--curve_secret_file and --master_public_key_file: expected together")
    if curve_secret_file:
        try:
            options["curve"] = CurveClientKeys.from_files(curve_secret_file,
                                                          master_public_key_file)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--curve_secret_file/--master_public_key_file: {exc}") from None
    return options


def link_options_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """:func:`link_options` from the environment (for scripts and examples).

    ``MESOSLITE_PRINCIPAL`` with ``MESOSLITE_SECRET_FILE`` (or ``MESOSLITE_SECRET``), and
    ``MESOSLITE_CURVE_SECRET_FILE`` with ``MESOSLITE_MASTER_PUBLIC_KEY_FILE``; nothing set:
    no options.  ValueError naming the variable when one is incomplete.
    """
    env = os.environ if env is None else env
    options: dict[str, Any] = {}
    principal = env.get("MESOSLITE_PRINCIPAL", "")
    secret = env.get("MESOSLITE_SECRET", "")
    secret_file = env.get("MESOSLITE_SECRET_FILE", "")
    if principal and secret and not secret_file:
        options["credential"] = Credential(principal, secret)
        principal = ""
    elif principal and not secret_file:
        raise ValueError("MESOSLITE_PRINCIPAL is set but neither MESOSLITE_SECRET nor "
                         "MESOSLITE_SECRET_FILE")
    options.update(link_options(
        principal=principal, secret_file=secret_file if principal else "",
        curve_secret_file=env.get("MESOSLITE_CURVE_SECRET_FILE", ""),
        master_public_key_file=env.get("MESOSLITE_MASTER_PUBLIC_KEY_FILE", "")))
    return options
