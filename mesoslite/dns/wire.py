"""DNS messages on the wire, through dnspython: a query's bytes → the reply's bytes.

Owns: :func:`reply` (parse and check a query, ask ``lookup`` for the :class:`Answer`,
build the reply; over UDP a reply larger than 512 bytes, or than the client's EDNS
payload size, is cut to its question with the TC bit set, so that the client asks
again over TCP) and :func:`error_reply` (FORMERR for bytes that do not parse, built by
hand from the header: no library call can fail on it).  Packets that are too short to
carry a header, or that are themselves responses, get no reply at all.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.SRV
import dns.rrset

from mesoslite.dns.answer import Answer, Rr, Soa
from mesoslite.dns.table import Srv

#: Largest UDP reply without EDNS (RFC 1035).
UDP_LIMIT = 512
#: Largest UDP reply we send to an EDNS client, whatever it offers (the DNS flag day's 1232).
EDNS_LIMIT = 1232
#: Largest query accepted (a question is at most ~270 bytes; EDNS options add a little).
MAX_QUERY = 4096
#: The rcode of a reply to a query the server failed to answer.
SERVFAIL = dns.rcode.SERVFAIL
_IN = dns.rdataclass.IN
_QR = 0x8000

Lookup = Callable[[str, str], Answer]


class Dropped(Exception):
    """The packet gets no reply (too short for a header, or not a query)."""


@functools.lru_cache(maxsize=8192)
def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text + ".")


def error_reply(data: bytes, rcode: int = dns.rcode.FORMERR) -> bytes:
    """A header-only reply to ``data`` (same id and opcode) with ``rcode``."""
    if len(data) < 12:
        raise Dropped("shorter than a DNS header")
    ident, flags = struct.unpack("!HH", data[:4])
    if flags & _QR:
        raise Dropped("a response, not a query")
    opcode_bits = flags & 0x7800
    return struct.pack("!HHHHHH", ident, _QR | opcode_bits | (flags & 0x0100) | rcode,
                       0, 0, 0, 0)


def _rdata(rr: Rr) -> dns.rdata.Rdata:
    data = rr.data
    if rr.kind == "A":
        assert isinstance(data, str)
        return dns.rdtypes.IN.A.A(_IN, dns.rdatatype.A, data)
    if rr.kind == "SRV":
        assert isinstance(data, Srv)
        return dns.rdtypes.IN.SRV.SRV(_IN, dns.rdatatype.SRV, 0, 1, data.port,
                                      _name(data.target))
    if rr.kind == "NS":
        assert isinstance(data, str)
        return dns.rdtypes.ANY.NS.NS(_IN, dns.rdatatype.NS, _name(data))
    assert isinstance(data, Soa)
    return dns.rdtypes.ANY.SOA.SOA(_IN, dns.rdatatype.SOA, _name(data.mname),
                                   _name(data.rname), data.serial, data.refresh,
                                   data.retry, data.expire, data.minimum)


@functools.lru_cache(maxsize=4096)
def _rrset(owner: str, kind: str, values: tuple[tuple[int, str | Srv | Soa], ...]
           ) -> dns.rrset.RRset:
    """One RRset, built once per content (records are immutable values; RRsets are only
    read once built): owner text as given, so that the asker's case is kept."""
    rrset = dns.rrset.RRset(dns.name.from_text(owner), _IN, dns.rdatatype.from_text(kind))
    for ttl, data in values:
        rrset.add(_rdata(Rr(owner, kind, ttl, data)), ttl)
    return rrset


def _section(records: tuple[Rr, ...], qname: str,
             asked: dns.name.Name) -> list[dns.rrset.RRset]:
    """Records grouped into RRsets (the question's own name keeps the asker's case)."""
    groups: dict[tuple[str, str], list[tuple[int, str | Srv | Soa]]] = {}
    for rr in records:
        groups.setdefault((rr.name, rr.kind), []).append((rr.ttl, rr.data))
    asked_text = asked.to_text()
    return [_rrset(asked_text if name == qname else name + ".", kind, tuple(values))
            for (name, kind), values in groups.items()]


def reply(data: bytes, lookup: Lookup, *, udp: bool) -> tuple[bytes, str]:
    """The reply to the query ``data`` and its outcome (rcode name, or TRUNCATED).

    Raises :class:`Dropped` when the packet gets no reply.
    """
    if len(data) > MAX_QUERY:
        return error_reply(data), "FORMERR"
    try:
        query = dns.message.from_wire(data)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
        return error_reply(data), "FORMERR"
    if query.flags & dns.flags.QR:
        raise Dropped("a response, not a query")
    if query.opcode() != dns.opcode.QUERY:
        return error_reply(data, dns.rcode.NOTIMP), "NOTIMP"
    if len(query.question) != 1:
        return error_reply(data), "FORMERR"
    question = query.question[0]
    response = dns.message.make_response(query, our_payload=EDNS_LIMIT)
    response.flags &= ~dns.flags.RA
    if question.rdclass not in (_IN, dns.rdataclass.ANY):
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire(), "REFUSED"
    qname = question.name.to_text(omit_final_dot=True).lower()
    answer = lookup(qname, dns.rdatatype.to_text(question.rdtype))
    response.set_rcode(dns.rcode.from_text(answer.rcode))
    if answer.authoritative:
        response.flags |= dns.flags.AA
    response.answer = _section(answer.answer, qname, question.name)
    response.authority = _section(answer.authority, qname, question.name)
    response.additional = _section(answer.additional, qname, question.name)
    limit = 65535
    if udp:
        limit = UDP_LIMIT if query.edns < 0 else max(UDP_LIMIT, min(query.payload, EDNS_LIMIT))
    try:
        return response.to_wire(max_size=limit), answer.rcode
    except dns.exception.TooBig:
        response.answer = []
        response.authority = []
        response.additional = []
        response.flags |= dns.flags.TC
        return response.to_wire(), "TRUNCATED"
