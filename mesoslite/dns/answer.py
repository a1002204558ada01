"""A DNS question → the records of its answer, from the record table (PURE).

Owns: :func:`resolve` and the values it returns (:class:`Answer`, :class:`Rr`,
:class:`Soa`).  The server is authoritative for its domain only:

* a name outside the domain: REFUSED (no recursion is offered);
* A / SRV / ANY for a name with such records: NOERROR with them (SRV answers carry
  their targets' A records as additional records);
* a name that exists without records of the asked type (the apex, an inner name such
  as ``marathon.mesos``, AAAA of a task): NOERROR, no answer, the SOA as authority;
* a name that does not exist: NXDOMAIN with the SOA as authority (RFC 2308), so that
  resolvers cache the negative answer for the SOA's minimum TTL;
* SOA and NS at the apex: the SOA; the NS ``ns1.<domain>`` (with its A when known).
"""

from __future__ import annotations

import attrs

from mesoslite.dns.table import Records, Srv

#: Question types answered from the table (others get NOERROR/NXDOMAIN without records).
KNOWN_TYPES = frozenset({"A", "AAAA", "SRV", "SOA", "NS", "ANY"})


@attrs.frozen
class Soa:
    """The SOA record's fields (Mesos-DNS's defaults)."""

    mname: str
    rname: str
    serial: int
    refresh: int = 60
    retry: int = 600
    expire: int = 86400
    minimum: int = 60


@attrs.frozen
class Rr:
    """One resource record: ``kind`` is A, SRV, SOA or NS; ``data`` its value."""

    name: str
    kind: str
    ttl: int
    data: str | Srv | Soa


@attrs.frozen
class Answer:
    """What to answer: the rcode and the three record sections."""

    rcode: str
    authoritative: bool
    answer: tuple[Rr, ...] = ()
    authority: tuple[Rr, ...] = ()
    additional: tuple[Rr, ...] = ()


def in_zone(name: str, domain: str) -> bool:
    """True when ``name`` is ``domain`` or below it."""
    return name == domain or name.endswith("." + domain)


def _a(records: Records, name: str, ttl: int) -> tuple[Rr, ...]:
    return tuple(Rr(name, "A", ttl, ip) for ip in records.a.get(name, ()))


def _srv(records: Records, name: str, ttl: int) -> tuple[tuple[Rr, ...], tuple[Rr, ...]]:
    answers = tuple(Rr(name, "SRV", ttl, s) for s in records.srv.get(name, ()))
    extra: list[Rr] = []
    for target in sorted({s.target for s in records.srv.get(name, ())}):
        extra += _a(records, target, ttl)
    return answers, tuple(extra)


def resolve(records: Records, qname: str, qtype: str, *, domain: str, ttl: int,
            soa: Soa) -> Answer:
    """The answer to ``qname`` (lower case, no final dot) of type ``qtype`` (A, SRV, ...)."""
    if not in_zone(qname, domain):
        return Answer("REFUSED", authoritative=False)
    soa_rr = Rr(domain, "SOA", soa.minimum, soa)
    answer: tuple[Rr, ...] = ()
    additional: tuple[Rr, ...] = ()
    if qtype in ("A", "ANY"):
        answer += _a(records, qname, ttl)
    if qtype in ("SRV", "ANY"):
        found, extra = _srv(records, qname, ttl)
        answer += found
        additional += extra
    if qname == domain and qtype in ("SOA", "ANY"):
        answer += (Rr(domain, "SOA", ttl, soa),)
    if qname == domain and qtype in ("NS", "ANY"):
        answer += (Rr(domain, "NS", ttl, soa.mname),)
        additional += _a(records, soa.mname, ttl)
    if answer:
        return Answer("NOERROR", True, answer, (), additional)
    if qname in records.names:
        return Answer("NOERROR", True, (), (soa_rr,))
    return Answer("NXDOMAIN", True, (), (soa_rr,))
