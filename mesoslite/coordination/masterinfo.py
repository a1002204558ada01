"""MasterInfo as JSON in a leader znode, with Mesos's field names (PURE).

Owns: the bytes a contender writes into its ``json.info_<seq>`` znode and
the reverse.  The JSON carries Mesos's ``MasterInfo`` fields (``id``, ``ip``,
``port``, ``hostname``, ``version``, ``pid``, ``address{ip, hostname, port}``)
plus mesoslite's ``zmq_endpoint`` and ``http_endpoint``.

``ip`` is written as Mesos writes it: a uint32 (the IPv4 address in network
byte order, read as a little-endian integer; 0 when the address is not IPv4),
so Mesos clients that read it find the leader; ``address.ip`` is the dotted
string.  Decoding accepts both forms (``address.ip`` first).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from mesoslite.protocol.types import MasterInfo

#: Znode name prefix of a leader candidate, as in Mesos (`<prefix><10-digit sequence>`).
MASTER_INFO_LABEL = "json.info_"


class MasterInfoError(ValueError):
    """A leader znode's content is not a valid MasterInfo; ``field`` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def master_info_to_dict(info: MasterInfo) -> dict[str, Any]:
    """The JSON object for ``info`` (Mesos names; ``ip`` as Mesos's uint32)."""
    out: dict[str, Any] = {
        "id": info.id,
        "ip": ip_to_uint32(info.ip),
        "port": info.port,
        "hostname": info.hostname,
        "version": info.version,
        "address": {"ip": info.ip, "hostname": info.hostname, "port": info.port},
        "zmq_endpoint": info.zmq_endpoint,
        "http_endpoint": info.http_endpoint,
    }
    if info.pid:
        out["pid"] = info.pid
    return out


def master_info_to_json(info: MasterInfo) -> bytes:
    """UTF-8 JSON bytes for a leader znode."""
    return json.dumps(master_info_to_dict(info), sort_keys=True).encode("utf-8")


def ip_to_uint32(ip: str) -> int:
    """A dotted IPv4 address as Mesos's ``MasterInfo.ip`` (0 when it is not IPv4)."""
    try:
        return int.from_bytes(ipaddress.IPv4Address(ip).packed, "little")
    except ValueError:
        return 0


def uint32_to_ip(value: int) -> str:
    """Mesos's ``MasterInfo.ip`` (network byte order read little-endian) → dotted IPv4."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise MasterInfoError("ip", f"expected a uint32, got {value!r}")
    return str(ipaddress.IPv4Address(value.to_bytes(4, "little")))


def _text(obj: dict[str, Any], key: str, field: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if value is None:
        raise MasterInfoError(field, "missing, expected a string")
    if not isinstance(value, str):
        raise MasterInfoError(field, f"expected a string, got {value!r}")
    return value


def _port(obj: dict[str, Any], key: str, field: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise MasterInfoError(field, f"expected a port in 0-65535, got {value!r}")
    return value


def master_info_from_dict(obj: Any) -> MasterInfo:
    """Validate a decoded JSON object into a :class:`MasterInfo` (MasterInfoError if bad)."""
    if not isinstance(obj, dict):
        raise MasterInfoError("MasterInfo", f"expected a JSON object, got {type(obj).__name__}")
    address = obj.get("address")
    if address is not None and not isinstance(address, dict):
        raise MasterInfoError("address", f"expected an object, got {address!r}")
    address = address or {}
    ip_value = address.get("ip", obj.get("ip"))
    if isinstance(ip_value, bool) or ip_value is None:
        raise MasterInfoError("ip", f"expected an address string or a uint32, got {ip_value!r}")
    if isinstance(ip_value, int):
        ip = uint32_to_ip(ip_value)
    elif isinstance(ip_value, str):
        ip = ip_value
    else:
        raise MasterInfoError("ip", f"expected an address string or a uint32, got {ip_value!r}")
    port = _port(obj, "port", "port") if "port" in obj else _port(address, "port", "address.port")
    hostname = _text(obj, "hostname", "hostname", address.get("hostname", ip))
    return MasterInfo(
        id=_text(obj, "id", "id"),
        ip=ip,
        port=port,
        hostname=hostname,
        version=_text(obj, "version", "version", ""),
        zmq_endpoint=_text(obj, "zmq_endpoint", "zmq_endpoint", ""),
        http_endpoint=_text(obj, "http_endpoint", "http_endpoint", ""),
        pid=_text(obj, "pid", "pid", ""),
    )


def master_info_from_json(data: bytes) -> MasterInfo:
    """Decode a leader znode's bytes (MasterInfoError when they are not a MasterInfo)."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MasterInfoError("MasterInfo", f"not UTF-8 JSON ({exc})") from None
    return master_info_from_dict(obj)


def candidate_sequence(name: str, label: str = MASTER_INFO_LABEL) -> int | None:
    """The sequence number of a candidate znode name like ``json.info_0000000003``, else None."""
    if not name.startswith(label):
        return None
    digits = name[len(label):]
    if len(digits) != 10 or not digits.isdigit():
        return None
    return int(digits)


def leader_of(children: list[str], label: str = MASTER_INFO_LABEL) -> str | None:
    """The candidate znode name with the lowest sequence number among ``children``."""
    best: tuple[int, str] | None = None
    for name in children:
        seq = candidate_sequence(name, label)
        if seq is not None and (best is None or seq < best[0]):
            best = (seq, name)
    return best[1] if best else None
