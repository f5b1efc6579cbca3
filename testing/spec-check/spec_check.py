#!/usr/bin/env python3
"""Independent implementation of the svc-rewarder v1 specification (docs/spec/).

Written from docs/spec/{README,CALCULUS,API,FFI}.md and testing/vectors/ only, without reading
the reference (Rust) implementation. It implements:

* strict JSON scanning (CALCULUS.md §1.3 stage A) and the document rules of the inputs and
  policy documents with their error codes, details and ordering rules (§1.1, §1.2, §1.3 B1-B9);
* the reward calculus (CALCULUS.md §2.1-§2.9) and its invariants (§3);
* the commitments: framing, run id, Merkle tree and proofs, manifest, manifest digest,
  ledger intent keys and content ids (CALCULUS.md §4.1-§4.5, §4.7, §4.8).

Signatures (CALCULUS.md §4.6: Ed25519, ML-DSA-65) are NOT reproduced: the golden vectors hold
none, and no signature library is used.

Usage: ``python3 spec_check.py [VECTORS_DIR]`` — checks every golden case and every entry of
``invalid.json`` (README.md "Golden vectors"), prints one line per failure and ends with
``spec-check: N passed, M failed``; the exit status is 1 when M > 0.
"""

from __future__ import annotations

import json
import os
import sys
import time

import blake3

U64_MAX = 2**64 - 1
U53_MAX = 2**53 - 1
MAX_DEPTH = 128


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class DocError(Exception):
    """A refused document: an error code and its ``details`` object (CALCULUS.md §1.3)."""

    def __init__(self, code: str, details: dict | None = None):
        """Code and details as in the table of CALCULUS.md §1.3."""
        super().__init__(code, details)
        self.code = code
        self.details = details if details is not None else {}

    @property
    def status(self) -> int:
        """HTTP status of the refusal: 400 for stage A, 422 for stage B (CALCULUS.md §1.3)."""
        return 400 if self.code == "malformed_json" else 422

    def __repr__(self) -> str:  # pragma: no cover - diagnostics only
        """Diagnostics only (CALCULUS.md §1.3: the message is not part of the contract)."""
        return f"DocError({self.code!r}, {self.details!r})"


class InvariantError(Exception):
    """A violated invariant (CALCULUS.md §3): a defect, answered as ``invariant_violation``."""


# ---------------------------------------------------------------------------------------------
# Stage A: strict JSON (CALCULUS.md §1.3)
# ---------------------------------------------------------------------------------------------


class JNum:
    """A JSON number token kept as its text (CALCULUS.md §1.3 "Notes for implementers")."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        """Keep the token's text (CALCULUS.md §1.3 "Notes for implementers")."""
        self.text = text

    def is_integer(self) -> bool:
        """A *JSON integer*: ``0`` or ``[1-9][0-9]*`` (CALCULUS.md §1.1 "Clarifications")."""
        t = self.text
        if t == "0":
            return True
        return len(t) > 0 and t[0] in "123456789" and all(c in "0123456789" for c in t)

    def __repr__(self) -> str:  # pragma: no cover
        """Diagnostics only."""
        return f"JNum({self.text})"


class JObj:
    """A JSON object kept as its ordered list of (key, value) members, repeats included
    (CALCULUS.md §1.3 stage A: "Repeated keys inside an object are legal JSON")."""

    __slots__ = ("members",)

    def __init__(self, members: list):
        """Members in document order (CALCULUS.md §1.3 rule B1)."""
        self.members = members


def bounded_int(text: str, bound: int) -> int | None:
    """Value of a JSON-integer text, or None when it exceeds ``bound`` — the digit count is
    checked before converting (CALCULUS.md §1.3 "Notes for implementers", last point)."""
    if len(text) > len(str(bound)):
        return None
    v = int(text)
    return v if v <= bound else None


class _Malformed(Exception):
    """Internal: stage A failed at a byte offset (CALCULUS.md §1.3 ``details.offset``)."""

    def __init__(self, offset: int):
        """Remember the offset (informative only, CALCULUS.md §1.3)."""
        super().__init__(offset)
        self.offset = offset


_WS = b" \t\n\r"
_DIGITS = b"0123456789"
_HEX = b"0123456789abcdefABCDEF"
_SIMPLE_ESC = {
    ord('"'): '"', ord("\\"): "\\", ord("/"): "/", ord("b"): "\b",
    ord("f"): "\f", ord("n"): "\n", ord("r"): "\r", ord("t"): "\t",
}


class _Scanner:
    """Recursive-descent RFC 8259 scanner over bytes with the restrictions of CALCULUS.md §1.3
    stage A (whitespace set, escapes, surrogate pairs, nesting ≤ 128)."""

    def __init__(self, data: bytes):
        """Scan ``data`` from offset 0 (CALCULUS.md §1.3 stage A)."""
        self.b = data
        self.n = len(data)
        self.i = 0

    def ws(self) -> None:
        """Skip whitespace: only space, tab, LF, CR (CALCULUS.md §1.3 stage A)."""
        b, n, i = self.b, self.n, self.i
        while i < n and b[i] in _WS:
            i += 1
        self.i = i

    def fail(self, at: int | None = None):
        """Stop with ``malformed_json`` at the current (or given) offset (CALCULUS.md §1.3)."""
        raise _Malformed(self.i if at is None else at)

    def value(self, depth: int):
        """One JSON value (RFC 8259; CALCULUS.md §1.3 stage A: no NaN, Infinity, quotes …)."""
        if self.i >= self.n:
            self.fail()
        c = self.b[self.i]
        if c == 0x7B:  # {
            return self.obj(depth + 1)
        if c == 0x5B:  # [
            return self.arr(depth + 1)
        if c == 0x22:  # "
            return self.string()
        if c == 0x2D or c in _DIGITS:
            return self.number()
        for lit, val in ((b"true", True), (b"false", False), (b"null", None)):
            if self.b.startswith(lit, self.i):
                self.i += len(lit)
                return val
        self.fail()

    def obj(self, depth: int):
        """An object, kept as its member list with repeats (CALCULUS.md §1.3 stage A); the
        container is at nesting ``depth`` (> 128 is malformed)."""
        if depth > MAX_DEPTH:
            self.fail()
        self.i += 1
        members = []
        self.ws()
        if self.i < self.n and self.b[self.i] == 0x7D:
            self.i += 1
            return JObj(members)
        while True:
            self.ws()
            if self.i >= self.n or self.b[self.i] != 0x22:
                self.fail()
            key = self.string()
            self.ws()
            if self.i >= self.n or self.b[self.i] != 0x3A:
                self.fail()
            self.i += 1
            self.ws()
            val = self.value(depth)
            members.append((key, val))
            self.ws()
            if self.i >= self.n:
                self.fail()
            c = self.b[self.i]
            self.i += 1
            if c == 0x2C:
                continue
            if c == 0x7D:
                return JObj(members)
            self.fail(self.i - 1)

    def arr(self, depth: int):
        """An array at nesting ``depth`` (> 128 is malformed, CALCULUS.md §1.3 stage A)."""
        if depth > MAX_DEPTH:
            self.fail()
        self.i += 1
        items = []
        self.ws()
        if self.i < self.n and self.b[self.i] == 0x5D:
            self.i += 1
            return items
        while True:
            self.ws()
            items.append(self.value(depth))
            self.ws()
            if self.i >= self.n:
                self.fail()
            c = self.b[self.i]
            self.i += 1
            if c == 0x2C:
                continue
            if c == 0x5D:
                return items
            self.fail(self.i - 1)

    def _hex4(self) -> int:
        """Four hex digits of either case after ``\\u`` (CALCULUS.md §1.3 stage A)."""
        s = self.b[self.i:self.i + 4]
        if len(s) != 4 or any(ch not in _HEX for ch in s):
            self.fail()
        self.i += 4
        return int(s, 16)

    def string(self) -> str:
        """A string: no raw byte below 0x20, only the listed escapes, surrogate escapes only as
        a high-low pair (CALCULUS.md §1.3 stage A). Returns the decoded value (§1.1
        "Clarifications": rules apply to decoded strings)."""
        b, n = self.b, self.n
        self.i += 1
        out: list[str] = []
        start = self.i
        while True:
            if self.i >= n:
                self.fail()
            c = b[self.i]
            if c == 0x22:
                out.append(b[start:self.i].decode("utf-8"))
                self.i += 1
                return "".join(out)
            if c < 0x20:
                self.fail()
            if c != 0x5C:
                self.i += 1
                continue
            out.append(b[start:self.i].decode("utf-8"))
            esc_at = self.i
            self.i += 1
            if self.i >= n:
                self.fail()
            e = b[self.i]
            if e in _SIMPLE_ESC:
                out.append(_SIMPLE_ESC[e])
                self.i += 1
            elif e == 0x75:  # u
                self.i += 1
                cp = self._hex4()
                if 0xD800 <= cp <= 0xDBFF:
                    if not b.startswith(b"\\u", self.i):
                        self.fail(esc_at)
                    self.i += 2
                    lo = self._hex4()
                    if not 0xDC00 <= lo <= 0xDFFF:
                        self.fail(esc_at)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                elif 0xDC00 <= cp <= 0xDFFF:
                    self.fail(esc_at)
                out.append(chr(cp))
            else:
                self.fail()
            start = self.i

    def number(self) -> JNum:
        """A number token ``-?(0|[1-9]\\d*)(\\.\\d+)?([eE][+-]?\\d+)?`` kept as text (RFC 8259;
        CALCULUS.md §1.3 stage A refuses ``+1``, ``01``, ``.5``, ``1.``, ``0x10``)."""
        b, n = self.b, self.n
        s = self.i
        if b[self.i] == 0x2D:
            self.i += 1
        if self.i >= n or b[self.i] not in _DIGITS:
            self.fail()
        if b[self.i] == 0x30:
            self.i += 1
        else:
            while self.i < n and b[self.i] in _DIGITS:
                self.i += 1
        if self.i < n and b[self.i] == 0x2E:
            self.i += 1
            if self.i >= n or b[self.i] not in _DIGITS:
                self.fail()
            while self.i < n and b[self.i] in _DIGITS:
                self.i += 1
        if self.i < n and b[self.i] in b"eE":
            self.i += 1
            if self.i < n and b[self.i] in b"+-":
                self.i += 1
            if self.i >= n or b[self.i] not in _DIGITS:
                self.fail()
            while self.i < n and b[self.i] in _DIGITS:
                self.i += 1
        return JNum(b[s:self.i].decode("ascii"))


def parse_json(data: bytes):
    """Stage A of CALCULUS.md §1.3: the bytes must be exactly one JSON text (RFC 8259), valid
    UTF-8 without BOM, only the listed escapes, no lone surrogate, nesting ≤ 128. Returns the
    value (objects as JObj, numbers as JNum) or raises DocError("malformed_json",
    {"offset": n})."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise DocError("malformed_json", {"offset": 0})
    try:
        data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise DocError("malformed_json", {"offset": e.start})
    sc = _Scanner(data)
    try:
        sc.ws()
        v = sc.value(0)
        sc.ws()
        if sc.i != sc.n:
            sc.fail()
    except _Malformed as m:
        raise DocError("malformed_json", {"offset": m.offset})
    return v


# ---------------------------------------------------------------------------------------------
# Stage B: document rules (CALCULUS.md §1.1, §1.2, §1.3)
# ---------------------------------------------------------------------------------------------

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
_KIND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.:-")


def is_epoch(s) -> bool:
    """``epoch``: a string of 1–128 characters of ``[A-Za-z0-9._:-]`` (CALCULUS.md §1.1)."""
    return isinstance(s, str) and 1 <= len(s) <= 128 and all(c in _ID_CHARS for c in s)


def is_policy_id(s) -> bool:
    """``policy_id``: a string of 1–64 characters of ``[A-Za-z0-9._:-]`` (CALCULUS.md §1.2)."""
    return isinstance(s, str) and 1 <= len(s) <= 64 and all(c in _ID_CHARS for c in s)


def is_kind_name(s) -> bool:
    """A kind name: 1–64 characters of ``[a-z0-9_.:-]`` (CALCULUS.md §1.1 ``kinds``, §1.2)."""
    return isinstance(s, str) and 1 <= len(s) <= 64 and all(c in _KIND_CHARS for c in s)


def is_actor_id(s) -> bool:
    """An actor id: 1–128 bytes, every byte in 0x21–0x7E, judged on the decoded string
    (CALCULUS.md §1.1 ``actors`` and "Clarifications")."""
    if not isinstance(s, str):
        return False
    bs = s.encode("utf-8", errors="surrogatepass")
    return 1 <= len(bs) <= 128 and all(0x21 <= x <= 0x7E for x in bs)


def parse_amount(v, field: str) -> int:
    """A canonical decimal string ≤ 2^64−1, else ``invalid_amount`` with ``field``
    (CALCULUS.md §1.1 ``pool_minor``, §1.2, §1.3 table; ground rule "Decimal strings")."""
    if not isinstance(v, str) or not v or any(c not in "0123456789" for c in v):
        raise DocError("invalid_amount", {"field": field})
    if len(v) > 1 and v[0] == "0":
        raise DocError("invalid_amount", {"field": field})
    n = bounded_int(v, U64_MAX)
    if n is None:
        raise DocError("invalid_amount", {"field": field})
    return n


def cut_name(name: str, limit: int = 64) -> str:
    """An unknown member's name cut to its first ``limit`` UTF-8 bytes, never inside a
    multi-byte character (CALCULUS.md §1.3 table, first ``schema`` rows)."""
    out, used = [], 0
    for ch in name:
        w = len(ch.encode("utf-8", errors="surrogatepass"))
        if used + w > limit:
            break
        out.append(ch)
        used += w
    return "".join(out)


def _top_members(doc, known: tuple):
    """Rule B1 (CALCULUS.md §1.3): the top level must be an object; members are yielded in
    document order after the unknown-name and repeated-name checks."""
    if not isinstance(doc, JObj):
        raise DocError("schema", {})
    seen = set()
    for name, val in doc.members:
        if name not in known:
            raise DocError("schema", {"field": cut_name(name)})
        if name in seen:
            raise DocError("schema", {"field": name})
        seen.add(name)
        yield name, val


def _missing(seen: set, required: tuple) -> None:
    """Rule B6 (CALCULUS.md §1.3): missing required members in the fixed order."""
    for name in required:
        if name not in seen:
            raise DocError("schema", {"field": name})


class Inputs:
    """A parsed inputs document (CALCULUS.md §1.1)."""

    def __init__(self, epoch, pool_minor, kinds, actors, events):
        """The validated members of CALCULUS.md §1.1 (events as 4-tuples of ints)."""
        self.epoch: str = epoch
        self.pool_minor: int = pool_minor
        self.kinds: list[str] = kinds
        self.actors: list[str] = actors
        self.events: list[tuple[int, int, int, int]] = events


INPUTS_MEMBERS = ("schema", "epoch", "pool_minor", "kinds", "actors", "events")


def _check_kinds(v) -> list:
    """``kinds`` (CALCULUS.md §1.1) under rule B2 (§1.3)."""
    if not isinstance(v, list):
        raise DocError("invalid_kinds", {"field": "kinds"})
    seen = set()
    for i, el in enumerate(v):
        if i >= 256 or not isinstance(el, str) or not is_kind_name(el) or el in seen:
            raise DocError("invalid_kinds", {"field": "kinds", "index": i})
        seen.add(el)
    if not v:
        raise DocError("invalid_kinds", {"field": "kinds"})
    return list(v)


def _check_actors(v, max_actors: int | None) -> list:
    """``actors`` (CALCULUS.md §1.1) under rules B3 and B4 (§1.3)."""
    if not isinstance(v, list):
        raise DocError("invalid_actor", {"field": "actors"})
    for i, el in enumerate(v):
        if max_actors is not None and i >= max_actors:
            raise DocError("limit_exceeded", {"field": "actors", "limit": max_actors})
        if not is_actor_id(el):
            raise DocError("invalid_actor", {"field": "actors", "index": i})
    seen = set()
    for i, el in enumerate(v):
        if el in seen:
            raise DocError("duplicate_actor", {"field": "actors", "index": i})
        seen.add(el)
    return list(v)


def _check_events(v, max_events: int | None) -> list:
    """``events`` (CALCULUS.md §1.1) under rule B5 (§1.3). Index ranges are left to B7:
    an out-of-range index is kept as U64_MAX + 1 (any such value is ≥ every array length)."""
    if not isinstance(v, list):
        raise DocError("invalid_event", {"field": "events"})
    out = []
    for i, ev in enumerate(v):
        if max_events is not None and i >= max_events:
            raise DocError("limit_exceeded", {"field": "events", "limit": max_events})
        if not isinstance(ev, list) or len(ev) != 4:
            raise DocError("invalid_event", {"field": "events", "index": i})
        vals = []
        for pos, x in enumerate(ev):
            if not isinstance(x, JNum) or not x.is_integer():
                raise DocError("invalid_number", {"field": "events", "index": i})
            if pos in (0, 3):
                n = bounded_int(x.text, U53_MAX)
                if n is None:
                    raise DocError("invalid_number", {"field": "events", "index": i})
            else:
                n = bounded_int(x.text, U64_MAX)
                if n is None:
                    n = U64_MAX + 1
            vals.append(n)
        out.append(tuple(vals))
    return out


def parse_inputs(raw: bytes, max_actors: int | None = None,
                 max_events: int | None = None) -> Inputs:
    """Parse and validate an inputs document: stage A then stage B of CALCULUS.md §1.3, rules
    B1, B2, B3, B4, B5, B6, B7, B8 in that order; document format of §1.1. Raises DocError with
    the exact code and details of the §1.3 table."""
    doc = parse_json(raw)
    seen, vals = set(), {}
    for name, v in _top_members(doc, INPUTS_MEMBERS):
        seen.add(name)
        if name == "schema":
            if v != "rewarder.inputs.v1" or not isinstance(v, str):
                raise DocError("schema", {"field": "schema"})
        elif name == "epoch":
            if not is_epoch(v):
                raise DocError("invalid_epoch", {"field": "epoch"})
            vals[name] = v
        elif name == "pool_minor":
            vals[name] = parse_amount(v, "pool_minor")
        elif name == "kinds":
            vals[name] = _check_kinds(v)
        elif name == "actors":
            vals[name] = _check_actors(v, max_actors)
        elif name == "events":
            vals[name] = _check_events(v, max_events)
    _missing(seen, INPUTS_MEMBERS)
    n_actors, n_kinds = len(vals["actors"]), len(vals["kinds"])
    for i, (_eid, ai, ki, _u) in enumerate(vals["events"]):  # B7
        if ai >= n_actors or ki >= n_kinds:
            raise DocError("invalid_number", {"field": "events", "index": i})
    ids = set()
    for i, ev in enumerate(vals["events"]):  # B8
        if ev[0] in ids:
            raise DocError("duplicate_event", {"field": "events", "index": i})
        ids.add(ev[0])
    return Inputs(vals["epoch"], vals["pool_minor"], vals["kinds"], vals["actors"],
                  vals["events"])


class Policy:
    """A parsed policy document with its defaults applied (CALCULUS.md §1.2)."""

    def __init__(self, policy_id, weights, caps, actor_cap_bps, min_payout_minor,
                 max_pool_minor):
        """The validated members of CALCULUS.md §1.2, defaults applied (caps ``{}``, no
        ceiling, min payout 1, no pool limit)."""
        self.policy_id: str = policy_id
        self.weights: dict[str, int] = weights
        self.caps: dict[str, int] = caps
        self.actor_cap_bps: int | None = actor_cap_bps
        self.min_payout_minor: int = min_payout_minor
        self.max_pool_minor: int | None = max_pool_minor


POLICY_MEMBERS = ("schema", "policy_id", "weights", "caps", "actor_cap_bps",
                  "min_payout_minor", "max_pool_minor")
POLICY_REQUIRED = ("schema", "policy_id", "weights")


def _check_kind_map(v, field: str, max_members: int | None, max_value: int) -> dict:
    """``weights`` / ``caps`` (CALCULUS.md §1.2) under rule B9 (§1.3): per member in document
    order the 257th-member check (weights only), the key rule, the value rule; then repeated
    keys (the smallest repeated key in byte order); then emptiness (weights only)."""
    code = "invalid_" + field
    if not isinstance(v, JObj):
        raise DocError(code, {"field": field})
    out, counts = {}, {}
    for i, (k, x) in enumerate(v.members):
        if max_members is not None and i >= max_members:
            raise DocError(code, {"field": field})
        if not is_kind_name(k):
            raise DocError(code, {"field": field})
        if not isinstance(x, JNum) or not x.is_integer():
            raise DocError("invalid_number", {"field": field, "key": k})
        n = bounded_int(x.text, max_value)
        if n is None:
            raise DocError("invalid_number", {"field": field, "key": k})
        out[k] = n
        counts[k] = counts.get(k, 0) + 1
    reps = sorted((k for k, c in counts.items() if c > 1), key=lambda s: s.encode("utf-8"))
    if reps:
        raise DocError(code, {"field": field, "key": reps[0]})
    if max_members is not None and not v.members:
        raise DocError(code, {"field": field})
    return out


def parse_policy(raw: bytes) -> Policy:
    """Parse and validate a policy document: stage A then stage B of CALCULUS.md §1.3 (rules
    B1, B6, B9); document format and defaults of §1.2. Raises DocError as in the §1.3 table."""
    doc = parse_json(raw)
    seen, vals = set(), {}
    for name, v in _top_members(doc, POLICY_MEMBERS):
        seen.add(name)
        if name == "schema":
            if not isinstance(v, str) or v != "rewarder.policy.v1":
                raise DocError("schema", {"field": "schema"})
        elif name == "policy_id":
            if not is_policy_id(v):
                raise DocError("invalid_policy_id", {"field": "policy_id"})
            vals[name] = v
        elif name == "weights":
            vals[name] = _check_kind_map(v, "weights", 256, 1_000_000)
        elif name == "caps":
            vals[name] = _check_kind_map(v, "caps", None, U53_MAX)
        elif name == "actor_cap_bps":
            n = bounded_int(v.text, 10000) if isinstance(v, JNum) and v.is_integer() else None
            if n is None or n < 1:
                raise DocError("invalid_actor_cap", {"field": "actor_cap_bps"})
            vals[name] = n
        else:  # min_payout_minor, max_pool_minor
            vals[name] = parse_amount(v, name)
    _missing(seen, POLICY_REQUIRED)
    return Policy(vals["policy_id"], vals["weights"], vals.get("caps", {}),
                  vals.get("actor_cap_bps"), vals.get("min_payout_minor", 1),
                  vals.get("max_pool_minor"))


# ---------------------------------------------------------------------------------------------
# The calculus (CALCULUS.md §2)
# ---------------------------------------------------------------------------------------------


def scores(inp: Inputs, pol: Policy) -> dict[str, int]:
    """Usage, caps and scores: CALCULUS.md §2.1 (U), §2.2 (C), §2.3 (s). Kinds are matched by
    name; a kind absent from ``weights`` weighs 0."""
    usage: dict[tuple[int, int], int] = {}
    for _eid, ai, ki, units in inp.events:
        usage[(ai, ki)] = usage.get((ai, ki), 0) + units
    s = {a: 0 for a in inp.actors}
    for (ai, ki), u in usage.items():
        kind = inp.kinds[ki]
        c = min(u, pol.caps[kind]) if kind in pol.caps else u
        s[inp.actors[ai]] += pol.weights.get(kind, 0) * c
    return s


def largest_remainder(R: int, A: list[str], s: dict[str, int]) -> dict[str, int]:
    """Largest remainder of R over A: CALCULUS.md §2.7 (remainders descending, ties by actor id
    ascending in byte order)."""
    if not A:
        return {}
    S = sum(s[a] for a in A)
    base, rem = {}, {}
    for a in A:
        base[a], rem[a] = divmod(R * s[a], S)
    L = R - sum(base.values())
    if not 0 <= L < len(A):
        raise InvariantError("I-1")
    order = sorted(A, key=lambda a: (-rem[a], a.encode("utf-8")))
    alloc = dict(base)
    for a in order[:L]:
        alloc[a] += 1
    return alloc


def compute_allocations(inp: Inputs, pol: Policy):
    """The whole calculus, CALCULUS.md §2.1–§2.9: returns (D, M, payees, residual) where payees
    is the list of (actor, amount, score) of the actors with a final allocation > 0, in actor id
    order ("Payees and the reported result")."""
    P = inp.pool_minor
    s = scores(inp, pol)
    D = min(P, pol.max_pool_minor) if pol.max_pool_minor is not None else P  # §2.4
    alloc = {a: 0 for a in inp.actors}
    A = [a for a in inp.actors if s[a] > 0]
    R = D
    M = None
    if pol.actor_cap_bps is not None:  # §2.5, §2.6
        M = D * pol.actor_cap_bps // 10000
        while A:
            S = sum(s[a] for a in A)
            X = [a for a in A if R * s[a] > M * S]
            if not X:
                break
            for a in X:
                alloc[a] = M
            R -= M * len(X)
            xs = set(X)
            A = [a for a in A if a not in xs]
    alloc.update(largest_remainder(R, A, s))  # §2.7
    for a, x in alloc.items():  # §2.8
        if 0 < x < pol.min_payout_minor:
            alloc[a] = 0
    payees = sorted(((a, x, s[a]) for a, x in alloc.items() if x > 0),
                    key=lambda t: t[0].encode("utf-8"))
    total = sum(x for _a, x, _s in payees)
    residual = P - total  # §2.9
    check_invariants(P, D, M, pol.min_payout_minor, payees, residual)
    return D, M, payees, residual


def check_invariants(P, D, M, min_payout, payees, residual) -> None:
    """Invariants I-1, I-2, I-3 of CALCULUS.md §3 (I-4 holds by construction: Python integers
    are exact)."""
    total = sum(x for _a, x, _s in payees)
    if total + residual != P or not total <= D <= P or residual < 0:
        raise InvariantError("I-1")
    for _a, x, _s in payees:
        if x < max(1, min_payout) or (M is not None and x > M):
            raise InvariantError("I-2")
    keys = [a.encode("utf-8") for a, _x, _s in payees]
    if any(keys[i] >= keys[i + 1] for i in range(len(keys) - 1)):
        raise InvariantError("I-3")


# ---------------------------------------------------------------------------------------------
# Commitments (CALCULUS.md §4)
# ---------------------------------------------------------------------------------------------


def b3(data: bytes) -> bytes:
    """Plain BLAKE3, 32-byte output (CALCULUS.md ground rules "BLAKE3")."""
    return blake3.blake3(data).digest()


def b3_keyed(key: bytes, data: bytes) -> bytes:
    """BLAKE3 keyed-hash mode with a 32-byte key (CALCULUS.md ground rules "BLAKE3")."""
    return blake3.blake3(data, key=key).digest()


def content_id(raw: bytes) -> str:
    """``"b3:" + lowercase_hex(BLAKE3(raw bytes))`` — inputs_cid, policy_hash and the FFI's
    content_id (CALCULUS.md §1, §4.8; FFI.md "Functions")."""
    return "b3:" + b3(raw).hex()


def frame(*fields: str) -> bytes:
    """Each field as a 4-byte big-endian length then its UTF-8 bytes (CALCULUS.md §4.1)."""
    out = bytearray()
    for f in fields:
        bs = f.encode("utf-8")
        out += len(bs).to_bytes(4, "big") + bs
    return bytes(out)


def run_id(tenant: str, epoch: str, inputs_cid: str, policy_hash: str) -> str:
    """Run id (CALCULUS.md §4.2)."""
    return "b3:" + b3(frame("rewarder.run.v1", tenant, epoch, inputs_cid, policy_hash)).hex()


def intent_key(tenant: str, epoch: str, actor: str) -> str:
    """Ledger intent (idempotency) key (CALCULUS.md §4.7)."""
    return "b3:" + b3(frame("rewarder.intent.v1", tenant, epoch, actor)).hex()


K_LEAF = b3(b"rewarder.merkle.leaf.v1")
K_NODE = b3(b"rewarder.merkle.node.v1")
EMPTY_ROOT = b3(b"rewarder.merkle.empty.v1")


def merkle_leaf(actor: str, amount: int) -> bytes:
    """``BLAKE3_keyed(K_leaf, u16_be(len) ‖ actor ‖ u64_be(amount))`` (CALCULUS.md §4.3)."""
    a = actor.encode("utf-8")
    return b3_keyed(K_LEAF, len(a).to_bytes(2, "big") + a + amount.to_bytes(8, "big"))


def merkle_node(left: bytes, right: bytes) -> bytes:
    """``BLAKE3_keyed(K_node, left ‖ right)`` (CALCULUS.md §4.3)."""
    return b3_keyed(K_NODE, left + right)


def merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """All levels of the tree, bottom-up; an odd last node is carried up unchanged
    (CALCULUS.md §4.3 "Tree")."""
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        nxt = [merkle_node(cur[j], cur[j + 1]) for j in range(0, len(cur) - 1, 2)]
        if len(cur) % 2:
            nxt.append(cur[-1])
        levels.append(nxt)
    return levels


def merkle_root(payees) -> bytes:
    """Root of the payees' tree, or the empty-tree root (CALCULUS.md §4.3)."""
    if not payees:
        return EMPTY_ROOT
    return merkle_levels([merkle_leaf(a, x) for a, x, *_ in payees])[-1][0]


def merkle_proof(payees, i: int) -> list[dict]:
    """Proof of payee number ``i``: sibling hashes bottom-up, none for a carried level
    (CALCULUS.md §4.3 "Proof")."""
    levels = merkle_levels([merkle_leaf(a, x) for a, x, *_ in payees])
    steps = []
    for lvl in levels[:-1]:
        sib = i ^ 1
        if sib < len(lvl):
            steps.append({"side": "L" if i & 1 else "R", "hash": lvl[sib].hex()})
        i //= 2
    return steps


def verify_proof(root_b3: str, actor: str, amount: int, proof: list[dict]) -> bool:
    """Fold a proof up from the leaf and compare with the root (CALCULUS.md §4.3
    "Verification"; FFI.md ``verify_allocation``)."""
    if not 1 <= len(actor.encode("utf-8")) <= 128 or not 0 <= amount <= U64_MAX:
        return False
    h = merkle_leaf(actor, amount)
    for st in proof:
        sib = bytes.fromhex(st["hash"])
        if st["side"] == "L":
            h = merkle_node(sib, h)
        elif st["side"] == "R":
            h = merkle_node(h, sib)
        else:
            return False
    return "b3:" + h.hex() == root_b3


_TENANT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")

MANIFEST_FIELDS = ("schema", "tenant", "epoch", "run_id", "inputs_cid", "policy_id",
                   "policy_hash", "pool_minor", "distributable_minor", "payout_total_minor",
                   "residual_minor", "payees", "allocations_root")


def manifest_digest(manifest: dict) -> str:
    """``"b3:" + hex(BLAKE3(frame(m1 … m13)))``, ``payees`` as its decimal string
    (CALCULUS.md §4.5)."""
    return "b3:" + b3(frame(*(str(manifest[k]) for k in MANIFEST_FIELDS))).hex()


def serialise_manifest(manifest: dict) -> str:
    """The compact serialised form of the manifest (CALCULUS.md §4.4 "Serialised form")."""
    parts = []
    for k in MANIFEST_FIELDS:
        v = manifest[k]
        if isinstance(v, int):
            parts.append(f'"{k}":{v}')
        else:
            esc = v.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'"{k}":"{esc}"')
    return "{" + ",".join(parts) + "}"


def compute(inputs_raw: bytes, policy_raw: bytes, tenant: str) -> dict:
    """One run, as the FFI's ``compute`` (FFI.md "Functions"): inputs parsed first, then the
    policy; the calculus (CALCULUS.md §2); the manifest (§4.4) and its digest (§4.5). A tenant
    outside 1–64 characters of ``[A-Za-z0-9._-]`` is refused ``bad_request`` first (FFI.md)."""
    if not (1 <= len(tenant) <= 64 and all(c in _TENANT_CHARS for c in tenant)):
        raise DocError("bad_request", {})
    inp = parse_inputs(inputs_raw)
    pol = parse_policy(policy_raw)
    D, _M, payees, residual = compute_allocations(inp, pol)
    icid, phash = content_id(inputs_raw), content_id(policy_raw)
    manifest = {
        "schema": "rewarder.manifest.v1",
        "tenant": tenant,
        "epoch": inp.epoch,
        "run_id": run_id(tenant, inp.epoch, icid, phash),
        "inputs_cid": icid,
        "policy_id": pol.policy_id,
        "policy_hash": phash,
        "pool_minor": str(inp.pool_minor),
        "distributable_minor": str(D),
        "payout_total_minor": str(sum(x for _a, x, _s in payees)),
        "residual_minor": str(residual),
        "payees": len(payees),
        "allocations_root": "b3:" + merkle_root(payees).hex(),
    }
    return {
        "inputs": inp,
        "manifest": manifest,
        "manifest_digest": manifest_digest(manifest),
        "payees": payees,
        "allocations": [{"actor": a, "amount_minor": str(x), "score": str(sc)}
                        for a, x, sc in payees],
    }


# ---------------------------------------------------------------------------------------------
# The checker (README.md "Golden vectors")
# ---------------------------------------------------------------------------------------------


def _diff(label: str, got, want, fails: list) -> None:
    """Record a mismatch for README.md "Checking an implementation" (bit-for-bit equality)."""
    if got != want:
        fails.append(f"{label}: got {json.dumps(got)[:200]} want {json.dumps(want)[:200]}")


def check_case(case_dir: str) -> list[str]:
    """Check one computed case (README.md "Computed cases" / "Checking an implementation"):
    both tenants' manifests member by member and in order, digests, allocations, intent keys,
    and the proof example (built, compared and verified)."""
    fails: list[str] = []
    with open(os.path.join(case_dir, "inputs.json"), "rb") as f:
        inputs_raw = f.read()
    with open(os.path.join(case_dir, "policy.json"), "rb") as f:
        policy_raw = f.read()
    with open(os.path.join(case_dir, "expected.json"), "rb") as f:
        exp_raw = f.read()
    exp_d = json.loads(exp_raw)
    exp_pairs = json.loads(exp_raw, object_pairs_hook=list)  # to see the manifests' order
    runs = {}
    for tenant in ("default", "tenant-b"):
        try:
            run = runs[tenant] = compute(inputs_raw, policy_raw, tenant)
        except (DocError, InvariantError) as e:
            return [f"{tenant}: refused: {e!r}"]
        want = exp_d[tenant]
        want_manifest_pairs = dict(dict(exp_pairs)[tenant])["manifest"]
        _diff(f"{tenant}.manifest member order", list(MANIFEST_FIELDS),
              [k for k, _v in want_manifest_pairs], fails)
        for k in MANIFEST_FIELDS:
            got_v, want_v = run["manifest"][k], want["manifest"].get(k)
            if type(got_v) is not type(want_v) or got_v != want_v:
                fails.append(f"{tenant}.manifest.{k}: got {got_v!r} want {want_v!r}")
        _diff(f"{tenant}.manifest_digest", run["manifest_digest"], want["manifest_digest"],
              fails)
        # The digest is a function of the expected manifest alone (§4.5), too.
        _diff(f"{tenant}.manifest_digest(expected manifest)",
              manifest_digest(want["manifest"]), want["manifest_digest"], fails)
    _diff("allocations", runs["default"]["allocations"], exp_d["allocations"], fails)
    _diff("allocations(tenant-b)", runs["tenant-b"]["allocations"], exp_d["allocations"], fails)
    epoch = runs["default"]["inputs"].epoch
    payee_ids = {a for a, _x, _s in runs["default"]["payees"]}
    for actor, key in exp_d["intent_keys"].items():
        if actor not in payee_ids:
            fails.append(f"intent_key[{actor}]: not a payee (README.md: keys of payees)")
        _diff(f"intent_key[{actor}]", intent_key("default", epoch, actor), key, fails)
    pe = exp_d.get("proof_example")
    if pe is not None:
        run = runs[pe["tenant"]]
        idx = next((i for i, p in enumerate(run["payees"]) if p[0] == pe["actor"]), None)
        _diff("proof_example.index", idx, pe["index"], fails)
        if idx is not None:
            _diff("proof_example.amount_minor", str(run["payees"][idx][1]),
                  pe["amount_minor"], fails)
            _diff("proof_example.proof", merkle_proof(run["payees"], idx), pe["proof"], fails)
        if not verify_proof(run["manifest"]["allocations_root"], pe["actor"],
                            int(pe["amount_minor"]), pe["proof"]):
            fails.append("proof_example: expected proof does not verify against the root")
    return fails


def check_invalid(entry: dict) -> str | None:
    """One entry of invalid.json: the document must be refused with exactly ``code``
    (README.md "Invalid cases"; CALCULUS.md §1.3)."""
    raw = entry["raw"].encode("utf-8")
    try:
        (parse_inputs if entry["doc"] == "inputs" else parse_policy)(raw)
    except DocError as e:
        if e.code != entry["code"]:
            return f"got {e.code} {json.dumps(e.details)} want {entry['code']}"
        return None
    return f"accepted, want {entry['code']}"


def spec_examples() -> list[tuple[str, bool]]:
    """The worked examples and check values stated in the text of CALCULUS.md (§1, §1.3 B3,
    B4, B8, §4.1, §4.3, §4.4, §4.5, §4.7), each as (name, ok)."""
    out = []

    def refusal(doc: str, raw: str):
        """The (code, details) a document gets (CALCULUS.md §1.3), or None if accepted."""
        try:
            data = raw if isinstance(raw, bytes) else raw.encode("utf-8")
            (parse_inputs if doc == "inputs" else parse_policy)(data)
        except DocError as e:
            return (e.code, e.details)
        return None

    base = ('{"schema":"rewarder.inputs.v1","epoch":"e","pool_minor":"1","kinds":["k"],'
            '"actors":%s,"events":%s}')
    out.append(("§1 empty-string id", content_id(b"") ==
                "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"))
    out.append(("§1.3 B3 example", refusal("inputs", base % ('["a","a",""]', "[]")) ==
                ("invalid_actor", {"field": "actors", "index": 2})))
    out.append(("§1.3 B4 example", refusal(
        "inputs", base % ('["z","y","a","b","y","z","b"]', "[]")) ==
        ("duplicate_actor", {"field": "actors", "index": 4})))
    out.append(("§1.3 B8 example", refusal(
        "inputs", base % ('["a"]', "[[7,0,0,1],[2,0,0,1],[3,0,0,1],[2,0,0,1],[7,0,0,1]]")) ==
        ("duplicate_event", {"field": "events", "index": 3})))
    out.append(("§1.3 depth 128 ok / 129 malformed",
                refusal("inputs", "[" * 128 + "]" * 128) == ("schema", {}) and
                refusal("inputs", "[" * 129 + "]" * 129)[0] == "malformed_json"))
    not_json = ["NaN", "Infinity", "-Infinity", "'a'", "+1", "01", ".5", "1.", "0x10",
                "[1,]", "{} {}", "{}\x00", b"\xef\xbb\xbf{}", '"\\ud800"', '"\\udc00x"',
                '"\\ud800\\u0041"', '"a\x01"', '"\\x"', "{}//", "\x0c{}",
                b'["\xff"]', b'["\xc0\xaf"]', b'["\xed\xa0\x80"]']
    out.append(("§1.3 stage A: not JSON",
                all(refusal("inputs", t)[0] == "malformed_json" for t in not_json)))
    out.append(("§1.3 stage A: JSON (then stage B)",
                all(refusal("inputs", t) == ("schema", {}) for t in
                    [" \t\r\n[]\n", '"\\u0000"', '"\\ud83d\\ude00"', "-0", "1e3", "1.5E-2",
                     "[true,false,null]", '"\\"\\\\\\/\\b\\f\\n\\r\\t\\uABcd"'])))
    out.append(("§1.3 unknown member cut to 64 bytes",
                refusal("policy", '{"' + "x" * 63 + '\u00e9y":1}') ==
                ("schema", {"field": "x" * 63})))
    out.append(("§1.1 escapes decoded", refusal(
        "inputs", base % ('["\\u0061cct:x","b\\/c","a\\u0020b"]', "[]")) ==
        ("invalid_actor", {"field": "actors", "index": 2})))
    out.append(("§4.1 frame example",
                frame("ab", "c") == bytes.fromhex("00000002616200000001" "63")))
    out.append(("§4.3 K_leaf", K_LEAF.hex() ==
                "1d40f73476ff99bbeba0627479c86873475d98c577bfb70558783f6e9e79cea4"))
    out.append(("§4.3 K_node", K_NODE.hex() ==
                "80e4e2c4c06cf0f5a1bfafe3d8d451b7e002f64886359e890481acaaf92e2063"))
    out.append(("§4.3 empty root", EMPTY_ROOT.hex() ==
                "6e4697767a0322c17cadf142e9172f2754254f929a56d9da7f675b71e45c1ebc"))
    out.append(("§4.3 leaf input example",
                b3_keyed(K_LEAF, bytes.fromhex("0008616363743a626f62000000000000024b")) ==
                merkle_leaf("acct:bob", 587)))
    out.append(("§4.6 key id example", key_id(bytes.fromhex(
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")) == "6c31041268f47160"))
    return out


def key_id(public_key: bytes) -> str:
    """§4.6: the first 16 hex digits of BLAKE3 of the public key's bytes."""
    return b3(public_key).hex()[:16]


def check_basic_text(vec_dir: str) -> list[tuple[str, bool]]:
    """The `basic` values quoted in CALCULUS.md §4.3, §4.4, §4.5, §4.7."""
    with open(os.path.join(vec_dir, "basic", "inputs.json"), "rb") as f:
        i_raw = f.read()
    with open(os.path.join(vec_dir, "basic", "policy.json"), "rb") as f:
        p_raw = f.read()
    run = compute(i_raw, p_raw, "default")
    runb = compute(i_raw, p_raw, "tenant-b")
    want_ser = ('{"schema":"rewarder.manifest.v1","tenant":"default","epoch":"2026-11-29",'
                '"run_id":"b3:dad0de53c0226e05a7dea4bf68310a92f4ead13b71c88c2c6c232f90c6396f46",'
                '"inputs_cid":"b3:071b72a2e6b1c10f41e6adc039c749a2ffe08805d66ba593e980358ace15b8aa",'
                '"policy_id":"rev42","policy_hash":"b3:e6e9e681af6fd44e9bb9dcdb921e86b055d1c81fc98af87a2870630bf2e381b4",'
                '"pool_minor":"1000","distributable_minor":"1000","payout_total_minor":"999",'
                '"residual_minor":"1","payees":2,"allocations_root":"b3:e096f64bbce3ac7e2d7b5056b65ceb078851c38fdca08ff0d0d7d69e4a8336be"}')
    la, lb = merkle_leaf("acct:alice", 412).hex(), merkle_leaf("acct:bob", 587).hex()
    return [
        ("§4.3 basic leaves", la.startswith("181769e4") and la.endswith("5b2314")
         and lb.startswith("2c4bd4ce") and lb.endswith("a43e09")),
        ("§4.4 basic serialised manifest", serialise_manifest(run["manifest"]) == want_ser),
        ("§4.5 basic digests", run["manifest_digest"] ==
         "b3:22bb6a8229f62ab55f6563ed57a810820344889486c44240db00d414caac24fe"
         and runb["manifest_digest"].startswith("b3:a7d0c378")
         and runb["manifest_digest"].endswith("a7a7c1")),
        ("§4.7 basic intent key", intent_key("default", "2026-11-29", "acct:alice") ==
         "b3:474fda61066833fb73a55a77fc7805491827726fccfee9ac5f41d12d177278ba"),
    ]


def main(argv: list[str]) -> int:
    """Run every check of README.md "Checking an implementation" and print the summary."""
    here = os.path.dirname(os.path.abspath(__file__))
    vec_dir = argv[1] if len(argv) > 1 else os.path.join(here, "..", "vectors")
    t0 = time.monotonic()
    passed = failed = 0
    cases = sorted(d for d in os.listdir(vec_dir)
                   if os.path.isfile(os.path.join(vec_dir, d, "expected.json")))
    for case in cases:
        try:
            fails = check_case(os.path.join(vec_dir, case))
        except Exception as e:  # a crash is a failure of the case, not of the checker
            fails = [f"exception {type(e).__name__}: {e}"]
        for f in fails:
            print(f"FAIL case {case}: {f}")
        passed, failed = (passed + 1, failed) if not fails else (passed, failed + 1)
    with open(os.path.join(vec_dir, "invalid.json"), "rb") as f:
        invalid = json.loads(f.read())
    for n, entry in enumerate(invalid):
        try:
            msg = check_invalid(entry)
        except Exception as e:
            msg = f"exception {type(e).__name__}: {e}"
        if msg:
            print(f"FAIL invalid[{n}] ({entry['doc']}, {entry['code']}): {msg}")
            failed += 1
        else:
            passed += 1
    try:
        examples = spec_examples() + check_basic_text(vec_dir)
    except Exception as e:
        examples = [(f"spec examples raised {type(e).__name__}: {e}", False)]
    for name, ok in examples:
        if ok:
            passed += 1
        else:
            print(f"FAIL spec example: {name}")
            failed += 1
    print(f"({len(cases)} vector cases, {len(invalid)} invalid documents, "
          f"{len(examples)} worked examples of the spec text; "
          f"{time.monotonic() - t0:.2f} s)")
    print(f"spec-check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
