"""OCPP-J frames for the fuzz suite: valid CALLs built from the ``ocpp`` package's JSON
schemas, then mutated; and, for every frame, what a conforming central system must do
with it (:func:`OcppSchemas.expect`), worked out from the frame text alone (not from
how the frame was made), by OCPP-J 1.6 section 4 and OCPP-J 2.0.1 section 4:

- a CALL with a readable id is answered with that id: a CALLRESULT, or a CALLERROR
  when the payload breaks the action's schema, the action is unknown, or the frame is
  not a well-formed CALL;
- a frame whose id cannot be read (not JSON, not an array, id not a string) gets a
  CALLERROR with the id ``"-1"``;
- a message id longer than 36 characters is refused (CALLERROR);
- CALLRESULT and CALLERROR frames are never answered;
- a frame larger than the gateway's ``max_frame_bytes`` closes the connection (1009).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import ocpp

from tests.fuzz.schemagen import (
    SchemaGen,
    inline_refs,
    other_kind,
    paths,
    replaced,
    valid_examples,
)

JSON = Any
MAX_ID = 36  # OCPP-J: the message id is at most 36 characters

# The actions the gateway receives (README "Handled messages"); any other action of the
# version is NotSupported, anything else NotImplemented.
HANDLED = {
    "1.6": {
        "BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction",
        "StopTransaction", "MeterValues", "DataTransfer", "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        # The security whitepaper's (certificate management)
        "SecurityEventNotification", "SignCertificate", "SignedFirmwareStatusNotification",
        "LogStatusNotification",
    },
    "2.0.1": {
        "BootNotification", "Heartbeat", "StatusNotification", "Authorize", "TransactionEvent",
        "MeterValues", "NotifyReport", "NotifyEvent", "SecurityEventNotification",
        "FirmwareStatusNotification", "LogStatusNotification",
        "DataTransfer",  # answered UnknownVendorId, as in 1.6
        "ReportChargingProfiles",  # the answer to GetChargingProfiles (smart charging)
        "SignCertificate",  # certificate management (A02/A03)
    },
}
SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
ERROR_CODES = {
    # OCPP-J 1.6 section 4.2.3 (with its "Occurence" spelling)
    "1.6": {
        "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
        "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
        "TypeConstraintViolation", "GenericError",
    },
    # OCPP-J 2.0.1 section 4.3
    "2.0.1": {
        "FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported",
        "NotImplemented", "NotSupported", "OccurrenceConstraintViolation",
        "PropertyConstraintViolation", "ProtocolError", "RpcFrameworkError", "SecurityError",
        "TypeConstraintViolation",
    },
}
# What a valid, unmutated CALL of a handled action may be refused with: a semantic
# refusal naming a field. Anything else means the gateway disagrees with the schema.
SEMANTIC_REFUSALS = {
    "PropertyConstraintViolation", "OccurenceConstraintViolation", "OccurrenceConstraintViolation",
}

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    return True


@dataclass(frozen=True, slots=True)
class Expect:
    """What must happen to one frame."""

    ids: frozenset[str]  # the answer ids allowed; empty: no answer at all
    error: bool | None  # True: must be a CALLERROR; None: CALLRESULT or CALLERROR
    close_1009: bool = False  # larger than the gateway takes: closed with 1009
    action: str | None = None  # a well-formed CALL of this action
    strict: bool = False  # valid and unmutated: CALLRESULT (or a semantic refusal)


@dataclass(frozen=True, slots=True)
class Frame:
    text: str
    kind: str  # how it was made, for the report
    expect: Expect


def _normalised(value: JSON) -> JSON:
    """Integral floats as ints (1e3 is an integer in draft-06, not in draft-04)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _depth(value: JSON) -> int:
    """How deeply ``value`` nests (iteratively: it may nest thousands deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


# No OCPP schema nests deeper than this (2.0.1's deepest is about 8); a deeper payload
# breaks its schema whatever it holds, and validating it would only exhaust the stack.
_MAX_SCHEMA_DEPTH = 32


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 section 6)")


_PREFIX_ID = re.compile(r'^\s*\[\s*-?\d+\s*,\s*"([^"\\]{1,36})"')


class OcppSchemas:
    """The request and response schemas of one OCPP version, inlined and compiled."""

    def __init__(self, version: str) -> None:
        self.version = version
        folder = Path(ocpp.__file__).parent / ("v16" if version == "1.6" else "v201") / "schemas"
        suffix = "" if version == "1.6" else "Request"
        self.requests: dict[str, JSON] = {}
        self.responses: dict[str, JSON] = {}
        self._validators: dict[tuple[str, bool], Any] = {}
        for path in sorted(folder.glob("*.json")):
            document = json.loads(path.read_text(encoding="utf-8-sig"))
            uri = path.resolve().as_uri()

            def load(_uri: str, document: JSON = document) -> JSON:
                return document

            schema = inline_refs(document, uri, load)
            schema["$schema"] = document.get("$schema", "http://json-schema.org/draft-04/schema#")
            name = path.stem
            if name.endswith("Response"):
                self.responses[name.removesuffix("Response")] = schema
            elif name.endswith(suffix):
                self.requests[name.removesuffix(suffix) if suffix else name] = schema
        assert self.requests and self.responses, f"no OCPP {version} schemas in {folder}"

    def _validator(self, action: str, response: bool) -> Any:
        key = (action, response)
        if key not in self._validators:
            schema = (self.responses if response else self.requests)[action]
            cls = jsonschema.validators.validator_for(schema)
            self._validators[key] = cls(schema, format_checker=_FORMATS if response else None)
        return self._validators[key]

    def request_valid(self, action: str, payload: JSON) -> bool | None:
        """True/False per the action's request schema; None when the verdict depends on
        whether 1.0 counts as an integer (draft-04 and draft-06 disagree)."""
        if action not in self.requests or _depth(payload) > _MAX_SCHEMA_DEPTH:
            return False
        validator = self._validator(action, False)
        as_sent = validator.is_valid(payload)
        if as_sent != validator.is_valid(_normalised(payload)):
            return None
        return bool(as_sent)

    def response_errors(self, action: str, payload: JSON) -> list[str]:
        if action not in self.responses:
            return [f"no {self.version} response schema for {action}"]
        return [
            f"{e.json_path}: {e.message}"
            for e in self._validator(action, True).iter_errors(payload)
        ]

    def expect(self, text: str, max_frame_bytes: int) -> Expect:
        """What a conforming central system does with ``text`` (see the module doc)."""
        if len(text.encode("utf-8")) > max_frame_bytes:
            return Expect(frozenset(), None, close_1009=True)
        prefix = _PREFIX_ID.match(text)
        unreadable = frozenset({"-1"} | ({prefix.group(1)} if prefix else set()))
        try:
            frame = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return Expect(unreadable, True)
        if not isinstance(frame, list) or not frame:
            return Expect(frozenset({"-1"}), True)
        unique_id = frame[1] if len(frame) > 1 else None
        if not isinstance(unique_id, str):
            return Expect(frozenset({"-1"}), True)
        message_type = frame[0]
        either = frozenset({unique_id, "-1"})
        if type(message_type) is int and message_type in (3, 4):
            return Expect(frozenset(), None)
        if not (type(message_type) is int and message_type == 2):
            return Expect(either, True)
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            return Expect(either, True)
        if len(unique_id) > MAX_ID or not unique_id:
            return Expect(either, True)
        action, payload = frame[2], frame[3]
        ids = either if _has_surrogate(unique_id) else frozenset({unique_id})
        valid = self.request_valid(action, payload)
        if valid is False:
            return Expect(ids, True, action=action)
        return Expect(ids, None, action=action)


# -- generation ---------------------------------------------------------------------

EDGE_TIMESTAMPS = [
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999+14:00",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:60Z",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00.123456789012345Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00-23:59",
    "1969-12-31T23:59:59Z",
    "2038-01-19T03:14:08Z",
    "+12026-01-01T00:00:00Z",
    "2026-01-01",
    "",
    "now",
]
BIG_NUMBERS = [
    "18446744073709551616",  # 2**64
    "-9223372036854775809",  # one below int64
    "9223372036854775808",  # one above int64
    str(2**200),
    "-" + str(2**100),
    "1e308",
    "-1e308",
    "1e309",  # beyond a double: Python reads inf
    "-1e309",
    "1e-400",
    "-0",
    "-0.0",
    "0.1e1",
    "123456789012345678901234567890.5",
    "4.9e-324",
    "2147483648",
    "-2147483649",
]
_UNKNOWN_ACTIONS = [
    "FooBar", "heartbeat", "Heartbeat ", " Heartbeat", "HEARTBEAT", "", "Heart\\u0000beat",
    "\\ud800", "Boot\\udfffNotification", "A" * 200, "Ünïcödé", "../../etc/passwd",
    "__proto__", "constructor", "toString", "StartTransaction\\n",
]


class FrameFactory:
    """Makes the frames of one connection, deterministically from ``rng``."""

    def __init__(
        self,
        rng: random.Random,
        schemas: OcppSchemas,
        *,
        tag: str,
        max_frame_bytes: int,
        examples_per_action: int = 3,
    ) -> None:
        self.rng = rng
        self.schemas = schemas
        self.tag = tag
        self.max_frame_bytes = max_frame_bytes
        gen = SchemaGen(rng)
        self.pool: dict[str, list[JSON]] = {}
        for action, schema in sorted(schemas.requests.items()):
            self.pool[action] = valid_examples(
                gen,
                schema,
                lambda p, a=action: schemas.request_valid(a, p) is True,
                examples_per_action,
                label=f"OCPP {schemas.version} {action}",
            )
        self.handled = sorted(HANDLED[schemas.version] & set(self.pool))
        self.others = sorted(set(self.pool) - HANDLED[schemas.version])
        self.count = 0
        self._kinds: list[tuple[str, float]] = [
            ("valid", 22), ("wrong_type", 10), ("missing_required", 4), ("extra_property", 3),
            ("big_number", 10), ("surrogate", 8), ("timestamp_edge", 8), ("oversize_string", 5),
            ("deep_nesting", 4), ("message_type", 5), ("bad_id", 5), ("shape", 5),
            ("malformed_json", 7), ("unknown_action", 4), ("answer_frame", 6),
            ("nan_literal", 1), ("over_limit", 0.3),
        ]

    def _id(self) -> str:
        return f"{self.tag}{self.count}"

    def _call(self) -> tuple[str, JSON]:
        rng = self.rng
        actions = self.handled if rng.random() < 0.8 else self.others
        action = rng.choice(actions)
        return action, rng.choice(self.pool[action])

    def _dumps(self, value: JSON) -> str:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
        if self.rng.random() < 0.5:
            try:  # raw UTF-8 on the wire half of the time, when it is encodable
                raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
                raw.encode("utf-8")
                return raw
            except UnicodeEncodeError:
                pass
        return text

    def _leaf_paths(self, payload: JSON, kinds: tuple[type, ...]) -> list[tuple[Any, ...]]:
        out = []
        for path in paths(payload):
            node: Any = payload
            for key in path:
                node = node[key]
            if isinstance(node, kinds) and not isinstance(node, bool):
                out.append(path)
        return out

    def _with_leaf(self, payload: JSON, kinds: tuple[type, ...], literal: str) -> str | None:
        """The CALL text with one leaf of the given kinds replaced by raw JSON ``literal``."""
        leaves = self._leaf_paths(payload, kinds)
        if not leaves:
            return None
        marker = "\u0001MARK\u0001"
        text = json.dumps(replaced(payload, self.rng.choice(leaves), marker), separators=(",", ":"))
        return text.replace(json.dumps(marker), literal, 1)

    def next(self) -> Frame:
        self.count += 1
        rng = self.rng
        kinds, weights = zip(*self._kinds, strict=True)
        kind = rng.choices(kinds, weights)[0]
        text = getattr(self, f"_{kind}")()
        if text is None:  # the mutation did not apply to this payload: send it valid
            kind, text = "valid", self._valid()
        expect = self.schemas.expect(text, self.max_frame_bytes)
        if kind == "valid" and expect.action in HANDLED[self.schemas.version] | set(self.others):
            expect = Expect(expect.ids, expect.error, expect.close_1009, expect.action, strict=True)
        return Frame(text, kind, expect)

    # -- the mutations (each returns the frame text, or None when it does not apply) --

    def _frame(self, action: str, payload_text: str, unique_id: str | None = None) -> str:
        uid = json.dumps(unique_id if unique_id is not None else self._id())
        return f"[2,{uid},{json.dumps(action)},{payload_text}]"

    def _valid(self) -> str:
        action, payload = self._call()
        return self._frame(action, self._dumps(payload))

    def _wrong_type(self) -> str | None:
        action, payload = self._call()
        targets = paths(payload)
        if not targets:
            return None
        path = self.rng.choice(targets)
        node: Any = payload
        for key in path:
            node = node[key]
        return self._frame(action, self._dumps(replaced(payload, path, other_kind(self.rng, node))))

    def _missing_required(self) -> str | None:
        action, payload = self._call()
        required = self.schemas.requests[action].get("required", [])
        if not required:
            return None
        dropped = {k: v for k, v in payload.items() if k != self.rng.choice(required)}
        return self._frame(action, self._dumps(dropped))

    def _extra_property(self) -> str:
        action, payload = self._call()
        extra = dict(payload)
        extra[self.rng.choice(["extra", "__proto__", "customData", "", "x" * 100])] = self.rng.choice(
            [1, "v", None, {"vendorId": "v"}]
        )
        return self._frame(action, self._dumps(extra))

    def _big_number(self) -> str | None:
        action, payload = self._call()
        literal = self.rng.choice(BIG_NUMBERS)
        body = self._with_leaf(payload, (int, float), literal)
        if body is None or self.rng.random() < 0.2:
            body = self._with_leaf(payload, (str,), literal)  # a number where a string goes
        return None if body is None else self._frame(action, body)

    def _surrogate(self) -> str | None:
        action, payload = self._call()
        rng = self.rng
        lone = rng.choice(["\\ud800", "\\udfff", "\\udbff", "\\ud83d", "\\ud800\\ud800", "\\udc00\\ud800"])
        where = rng.random()
        if where < 0.15:  # in the message id
            return self._frame(action, self._dumps(payload), None).replace(
                json.dumps(self._id()), f'"{lone}{self.count}"', 1
            )
        if where < 0.25:  # in a property name
            text = self._dumps(payload)
            return self._frame(action, text.replace("{", '{"' + lone + '":1,', 1) if text != "{}" else '{"' + lone + '":1}')
        leaves = self._leaf_paths(payload, (str,))
        if not leaves:
            return None
        marker = "MARK\u0001"
        path = rng.choice(leaves)
        node: Any = payload
        for key in path:
            node = node[key]
        text = json.dumps(replaced(payload, path, marker + node[: rng.randint(0, 3)]), separators=(",", ":"))
        return self._frame(action, text.replace("MARK\\u0001", lone, 1))

    def _timestamp_edge(self) -> str | None:
        action, payload = self._call()
        leaves = [
            p for p in self._leaf_paths(payload, (str,))
            if str(p[-1]).lower().endswith(("timestamp", "time", "date", "expirydate", "retrievedate"))
        ]
        if not leaves:
            return None
        edge = self.rng.choice(EDGE_TIMESTAMPS)
        return self._frame(action, self._dumps(replaced(payload, self.rng.choice(leaves), edge)))

    def _oversize_string(self) -> str | None:
        action, payload = self._call()
        leaves = self._leaf_paths(payload, (str,))
        if not leaves:
            return None
        # Up to just below the frame bound, and now and then exactly on it.
        n = self.rng.choice([37, 51, 256, 1025, 20_000, 60_000])
        body = self._dumps(replaced(payload, self.rng.choice(leaves), "x" * n))
        frame = self._frame(action, body)
        room = self.max_frame_bytes - len(frame.encode("utf-8"))
        if room < 0:
            return None
        if self.rng.random() < 0.2:  # pad to exactly max_frame_bytes
            frame = self._frame(action, body.replace("x" * n, "x" * (n + room), 1))
        return frame

    def _deep_nesting(self) -> str:
        rng = self.rng
        depth = rng.choice([64, 500, 1000, 1000, 3000, 20_000])
        deep = rng.choice([("[" * depth, "]" * depth), ('{"a":' * depth, "}" * depth)])
        nested = deep[0] + "1" + deep[1]
        action, payload = self._call()
        where = rng.random()
        if where < 0.4:  # as the payload of a CALL
            return self._frame(action, nested if nested.startswith("{") else "{\"a\":" + nested + "}")
        if where < 0.7:  # inside a property of a valid payload
            body = self._dumps(payload)
            return self._frame(action, body.replace("{", '{"deep":' + nested + ",", 1) if body != "{}" else '{"deep":' + nested + "}")
        if where < 0.85:  # the frame itself
            return "[" * depth + "]" * depth
        return f'[2,"{self._id()}","Heartbeat",{{}},' + nested + "]"

    def _message_type(self) -> str:
        action, payload = self._call()
        mt = self.rng.choice(["0", "1", "5", "6", "-1", "2.5", '"2"', "true", "null", "[2]", str(2**64), "{}"])
        return f"[{mt},{json.dumps(self._id())},{json.dumps(action)},{self._dumps(payload)}]"

    def _bad_id(self) -> str:
        action, payload = self._call()
        bad = self.rng.choice([
            json.dumps(self._id() + "x" * self.rng.choice([27, 40, 100, 5000])),  # > 36 chars
            "17", "null", "true", "[]", "{}", "1.5", '["a"]', str(2**70),
        ])
        return f"[2,{bad},{json.dumps(action)},{self._dumps(payload)}]"

    def _shape(self) -> str:
        uid = json.dumps(self._id())
        return self.rng.choice([
            "{}", '{"a":1}', '"text"', "123", "null", "true", "[]", "[2]", f"[2,{uid}]",
            f'[2,{uid},"Heartbeat"]', f'[2,{uid},"Heartbeat",{{}},{{}}]', f'[2,{uid},"Heartbeat",[]]',
            f'[2,{uid},17,{{}}]', f'[2,{uid},"Heartbeat","{{}}"]', f'[2,{uid},"Heartbeat",null]',
            f'[2,{uid},null,{{}}]', f"[{uid},2,\"Heartbeat\",{{}}]", f'[[2,{uid},"Heartbeat",{{}}]]',
            f'[2,{uid},"Heartbeat",{{}}]' * 2,
        ])

    def _malformed_json(self) -> str:
        rng = self.rng
        good = self._valid()
        choice = rng.random()
        if choice < 0.4:
            return good[: rng.randint(0, len(good) - 1)]  # truncated: never valid JSON
        if choice < 0.6:
            at = rng.randint(0, len(good))
            return good[:at] + rng.choice(["{", "]", ",", "'", '"', "\\", ":", "\\x00"]) + good[at:]
        return rng.choice([
            "", " ", good + "]", good + ",", "[2,'x','Heartbeat',{}]",
            '[2,"' + self._id() + '","Heartbeat",{a:1}]', '[2,"' + self._id() + '","Heartbeat",{},]',
            '[2,"' + self._id() + '","Heartbeat",{"a":1,}]', "[2,\"x\\q\",\"Heartbeat\",{}]",
            '[2,"' + self._id() + '","Heartbeat",{"a":01}]', '[2,"' + self._id() + '","Heartbeat",{"a":.5}]',
            "\x00", "//c\n" + good,
        ])

    def _unknown_action(self) -> str:
        _, payload = self._call()
        return self._frame("MARK", self._dumps(payload)).replace('"MARK"', '"' + self.rng.choice(_UNKNOWN_ACTIONS) + '"', 1)

    def _answer_frame(self) -> str:
        rng = self.rng
        uid = json.dumps(rng.choice([self._id(), "-1", "never-sent", "x" * 40]))
        return rng.choice([
            f"[3,{uid},{{}}]", f'[3,{uid},{{"status":"Accepted"}}]', f'[4,{uid},"GenericError","",{{}}]',
            f'[4,{uid},"NotAnErrorCode","x",{{}}]', f"[3,{uid}]", f"[3,{uid},[]]", f"[4,{uid}]",
            f'[4,{uid},1,2,3]', f"[3,{uid},{{}},{{}}]", f'[4,{uid},"GenericError","x",{{}},1]',
        ])

    def _nan_literal(self) -> str | None:
        action, payload = self._call()
        body = self._with_leaf(payload, (int, float), self.rng.choice(["NaN", "Infinity", "-Infinity"]))
        return None if body is None else self._frame(action, body)

    def _over_limit(self) -> str:
        # One byte over the bound is enough; the answer must be a 1009 close.
        n = self.max_frame_bytes + self.rng.choice([1, 10, 5000])
        return self._frame("DataTransfer", json.dumps({"vendorId": "v", "data": "x" * n}))
