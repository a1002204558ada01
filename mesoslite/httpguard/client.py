"""What a client of a guarded server sends: HTTP Basic credentials from the environment.

Owns: :func:`basic_authorization`.  Credentials come from the environment only
(``MESOSLITE_PRINCIPAL`` and ``MESOSLITE_SECRET``, or ``MESOSLITE_SECRET_FILE`` naming a
file that holds the secret): never from a URL or a flag, which show in process lists and
shell histories.  Used by ``mesoslite ctl`` and ``mesoslite dns``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping


def basic_authorization(env: Mapping[str, str] | None = None) -> str | None:
    """``Basic ...`` for the environment's principal, None when no principal is set.

    ValueError naming the variable when the principal has no secret or the secret file
    cannot be read.
    """
    env = os.environ if env is None else env
    principal = env.get("MESOSLITE_PRINCIPAL", "")
    if not principal:
        return None
    secret = env.get("MESOSLITE_SECRET", "")
    path = env.get("MESOSLITE_SECRET_FILE", "")
    if not secret and path:
        try:
            with open(path, encoding="utf-8") as f:
                secret = f.read().strip()
        except OSError as exc:
            raise ValueError(f"MESOSLITE_SECRET_FILE {path}: cannot read it ({exc.strerror})"
                             ) from None
    if not secret:
        raise ValueError("MESOSLITE_PRINCIPAL is set but neither MESOSLITE_SECRET nor "
                         "MESOSLITE_SECRET_FILE")
    token = base64.b64encode(f"{principal}:{secret}".encode()).decode("ascii")
    return f"Basic {token}"
