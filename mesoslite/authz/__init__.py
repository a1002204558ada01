"""Authorization: Mesos-style ACLs that say which principal may do what.

The public face of :mod:`.acls` (PURE: parsing, validation, decisions).  :mod:`.files`
reads an ``--acls`` value that names a file; importing this package does not load it.
"""

from mesoslite.authz.acls import (
    ACTIONS,
    AclError,
    Acls,
    Entity,
    Rule,
    Viewer,
    acls_for,
    acls_of,
    endpoint_path,
    endpoint_refusal,
    executor_user,
    is_inline,
    parse_acls,
    sandbox_ids,
    task_user,
    teardown_refusal,
    weights_refusal,
)

__all__ = ["ACTIONS", "AclError", "Acls", "Entity", "Rule", "Viewer", "acls_for", "acls_of",
           "endpoint_path", "endpoint_refusal", "executor_user", "is_inline", "parse_acls",
           "sandbox_ids", "task_user", "teardown_refusal", "weights_refusal"]
