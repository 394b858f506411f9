"""The CPO module operations of :mod:`ocpi.server` in OCPI 2.1.1 and 2.3.0.

The module logic is written once, in the internal form (OCPI 2.2.1): the providers and
the ``*_operations`` builders of :mod:`ocpi.server`. This module serves them in another
version with the pure conversions of :mod:`ocpi.versions`:

* **Sender interfaces** (locations, tariffs, sessions, CDRs): the page the provider
  gives is converted object by object. An object the version cannot express
  (:class:`~ocpi.versions.NotExpressible`, e.g. a connector standard 2.1.1 lacks) is
  left out of the page with a warning naming the field, never sent malformed; the
  pagination headers count the provider's objects, so ``offset``/``X-Total-Count`` stay
  consistent across pages. A single object (``GET locations/{id}[/{evse}[/{connector}]]``)
  that cannot be expressed is answered with status 3000 (a server error: the client
  asked nothing wrong; the message names the field), HTTP 200. Location pages kept as
  JSON (:class:`~ocpi.transport.RawJson`) are converted once per page text and kept
  (:data:`LOCATION_CACHE_SIZE` per version).
* **Receiver interfaces** (tokens, commands, charging profiles): the body is read with
  the version's model (2001 naming the field in that version's terms), converted to
  2.2.1 and handed to the 2.2.1 operation, whose answer's ``data`` is converted back.
  A body 2.2.1 cannot express is 2001 naming the field.

2.1.1 specifics: sessions and CDRs embed the location (the conversions take it, read
from the Locations provider; a session whose location is gone is left out); tokens
are keyed by ``uid`` only (a GET or PATCH looks for an RFID token, then OTHER); a
command's Token has no owner, the eMSP's party (``party_of``) is used; a 2.1.1 PATCH
needs no ``last_updated`` (``now`` fills it in); there is no CANCEL_RESERVATION nor
ChargingProfiles module.

Never imports ``gateway``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiDict
from pydantic import BaseModel

import ocpi.v211 as v211
import ocpi.v221 as v221
import ocpi.v230 as v230
from ocpi.server import (
    DEFAULT_MAX_LIMIT,
    CdrsSenderProvider,
    ChargingProfilesReceiverProvider,
    CommandsReceiverProvider,
    LocationsSenderProvider,
    OcpiCall,
    OcpiRequestContext,
    Operation,
    SessionsSenderProvider,
    TariffsSenderProvider,
    TokensReceiverProvider,
    charging_profiles_receiver_operations,
    commands_receiver_operations,
    ocpi_response,
    parse_page,
    path_id,
    read_json,
    tokens_receiver_operations,
    validate_input,
)
from ocpi.transport import (
    InvalidParametersError,
    OcpiStatus,
    PageRequest,
    RawJson,
    ServerError,
    UnknownLocationError,
    UnknownTokenError,
    json_dumps,
    json_loads,
    pagination_headers,
)
from ocpi.versions import NotExpressible
from ocpi.versions.objects import embedded_location, from_version, to_version

__all__ = [
    "LOCATION_CACHE_SIZE",
    "CpoModules",
    "PartyOf",
    "cpo_operations",
    "cpo_operations_v211",
    "cpo_operations_v230",
]

log = logging.getLogger("ocpi.versions")

M = TypeVar("M", bound=BaseModel)

V211 = "2.1.1"
V230 = "2.3.0"

LOCATION_CACHE_SIZE = 10_000
"""Converted location pages kept per version (keyed by the 2.2.1 JSON text)."""

PartyOf = Callable[[OcpiRequestContext], tuple[str, str]]
"""``(country_code, party_id)`` of the party a request comes from (its eMSP party)."""

Now = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class CpoModules:
    """The CPO's providers (2.2.1 form), as :mod:`ocpi.server` takes them."""

    locations: LocationsSenderProvider
    tariffs: TariffsSenderProvider
    sessions: SessionsSenderProvider
    cdrs: CdrsSenderProvider
    tokens: TokensReceiverProvider
    commands: CommandsReceiverProvider
    charging_profiles: ChargingProfilesReceiverProvider | None = None


# ------------------------------------------------------------------ helpers


def _page_response(
    call: OcpiCall, fetched: int, items: Sequence[Any], total: int, page: PageRequest
) -> web.Response:
    """A page whose headers count the ``fetched`` objects of the provider (some of which
    may have been left out of ``items``)."""
    headers = pagination_headers(call.context.url, page, total=total, count=fetched)
    return ocpi_response(list(items), headers=headers)


def _skip(kind: str, key: str, version: str, exc: NotExpressible) -> None:
    log.warning("%s %s left out of an OCPI %s page: %s", kind, key, version, exc)


def _single(convert: Callable[[], BaseModel], kind: str, key: str) -> BaseModel:
    try:
        return convert()
    except NotExpressible as exc:
        raise ServerError(f"{kind} {key!r}: {exc}") from None


def _up(convert: Callable[[], M]) -> M:
    """A body converted to 2.2.1; what 2.2.1 cannot hold is the client's 2001."""
    try:
        return convert()
    except NotExpressible as exc:
        raise InvalidParametersError(str(exc)) from None


def _with_body(call: OcpiCall, body: BaseModel) -> OcpiCall:
    return replace(call, body=json_dumps(body).encode("utf-8"))


def _answer_data(response: web.Response) -> Any:
    """The ``data`` of an answer made by :func:`ocpi.server.ocpi_response`."""
    if response.text is None:
        return None
    return json_loads(response.text).get("data")


async def _relay(
    operation: Operation,
    call: OcpiCall,
    convert: Callable[[Any], BaseModel | None] | None = None,
) -> web.Response:
    """Run the 2.2.1 ``operation``; its answer's data (when there is any) converted with
    ``convert``, its HTTP status and headers kept."""
    response = await operation.handler(call)
    data = _answer_data(response)
    if convert is None or data is None:
        return response
    converted = convert(data)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
    return ocpi_response(converted, http_status=response.status, headers=headers)


def _by_method(operations: Sequence[Operation]) -> Mapping[tuple[str, str], Operation]:
    return {(op.method, op.path): op for op in operations}


class _Converted:
    """Location JSON texts converted to another version, most recently used kept."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, RawJson | None] = OrderedDict()

    def get(self, text: str, convert: Callable[[v221.Location], BaseModel]) -> RawJson | None:
        if text in self._items:
            self._items.move_to_end(text)
            return self._items[text]
        location = v221.Location.model_validate(json_loads(text))
        try:
            result: RawJson | None = RawJson(json_dumps(convert(location)))
        except NotExpressible as exc:
            log.warning("Location %s cannot be served: %s", location.id, exc)
            result = None
        self._items[text] = result
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return result


# ---------------------------------------------------------------- locations


def _locations_operations(
    provider: LocationsSenderProvider, version: str, max_limit: int, cache_size: int
) -> list[Operation]:
    cache = _Converted(cache_size)
    written = partial(to_version, version=version)

    def convert(item: v221.Location | RawJson) -> RawJson | BaseModel | None:
        if isinstance(item, RawJson):
            return cache.get(item.text, written)
        try:
            return written(item)
        except NotExpressible as exc:
            _skip("Location", item.id, version, exc)
            return None

    async def list_locations(call: OcpiCall) -> web.Response:
        page = parse_page(call, max_limit=max_limit)
        items, total = await provider.list_locations(call.context, page)
        items = list(items[: page.limit])
        converted = [c for c in map(convert, items) if c is not None]
        return _page_response(call, len(items), converted, total, page)

    async def get_object(call: OcpiCall) -> web.Response:
        location_id = path_id(call, "location_id")
        location = await provider.get_location(call.context, location_id)
        if location is None:
            raise UnknownLocationError(f"location_id: unknown Location {location_id!r}")
        if "evse_uid" not in call.params:
            return ocpi_response(_single(partial(written, location), "Location", location_id))
        evse_uid = path_id(call, "evse_uid")
        evse = location.evse(evse_uid)
        if evse is None:
            raise UnknownLocationError(
                f"evse_uid: Location {location_id!r} has no EVSE {evse_uid!r}"
            )
        if "connector_id" not in call.params:
            return ocpi_response(_single(partial(written, evse), "EVSE", evse_uid))
        connector_id = path_id(call, "connector_id")
        connector = v221.find_connector(evse, connector_id)
        if connector is None:
            raise UnknownLocationError(
                f"connector_id: EVSE {evse_uid!r} has no Connector {connector_id!r}"
            )
        return ocpi_response(_single(partial(written, connector), "Connector", connector_id))

    return [
        Operation("GET", "", list_locations),
        Operation("GET", "/{location_id}", get_object),
        Operation("GET", "/{location_id}/{evse_uid}", get_object),
        Operation("GET", "/{location_id}/{evse_uid}/{connector_id}", get_object),
    ]


# ------------------------------------------------- tariffs, sessions, CDRs

Lister = Callable[[OcpiRequestContext, PageRequest], Awaitable[tuple[Sequence[Any], int]]]
PageConverter = Callable[[OcpiRequestContext, Sequence[Any]], Awaitable[list[BaseModel]]]


def _list_operation(
    lister: Lister, convert: PageConverter, *, max_limit: int, require_date_from: bool = False
) -> Operation:
    async def handle(call: OcpiCall) -> web.Response:
        page = parse_page(call, max_limit=max_limit, require_date_from=require_date_from)
        items, total = await lister(call.context, page)
        items = list(items[: page.limit])
        converted = await convert(call.context, items)
        return _page_response(call, len(items), converted, total, page)

    return Operation("GET", "", handle)


def _each(locations: LocationsSenderProvider, kind: str, version: str) -> PageConverter:
    """Each object in ``version``; what it cannot express is left out. A 2.1.1 session or
    CDR embeds its location (read from ``locations``, once per page; gone: left out)."""

    async def page(context: OcpiRequestContext, items: Sequence[Any]) -> list[BaseModel]:
        found: dict[str, v221.Location | None] = {}
        result = []
        for item in items:
            embedded = embedded_location(item, version)
            location = None
            if embedded is not None:
                key = embedded.location_id
                if key not in found:
                    found[key] = await locations.get_location(context, key)
                location = found[key]
                if location is None:
                    log.warning("%s %s left out of an OCPI %s page: Location %s is gone",
                                kind, item.id, version, key)  # fmt: skip
                    continue
            try:
                result.append(to_version(item, version, location=location))
            except NotExpressible as exc:
                _skip(kind, item.id, version, exc)
        return result

    return page


# ------------------------------------------------------------------ tokens

_TOKEN_PATH = "/{country_code}/{party_id}/{token_uid}"


def _owner(call: OcpiCall) -> tuple[str, str]:
    return (
        path_id(call, "country_code", max_length=2, exact=True),
        path_id(call, "party_id", max_length=3, exact=True),
    )


def _tokens_v211(provider: TokensReceiverProvider, now: Now) -> list[Operation]:
    ops = _by_method(tokens_receiver_operations(provider))
    types = (v211.TokenType.RFID.value, v211.TokenType.OTHER.value)

    def typed(call: OcpiCall, token_type: str) -> OcpiCall:
        query: MultiDict[str] = MultiDict(call.query)
        query["type"] = token_type
        return replace(call, query=query)

    async def get_token(call: OcpiCall) -> web.Response:
        country_code, party_id = _owner(call)
        uid = path_id(call, "token_uid")
        for token_type in types:  # 2.1.1 keys a token by uid alone
            token = await provider.get_token(call.context, country_code, party_id, uid, token_type)
            if token is not None:
                return ocpi_response(_single(partial(to_version, token, V211), "Token", uid))
        raise UnknownTokenError(f"token_uid: unknown Token {uid!r}")

    async def put_token(call: OcpiCall) -> web.Response:
        country_code, party_id = _owner(call)
        token = validate_input(v211.Token, await read_json(call))
        internal = _up(lambda: from_version(token, V211, party=(country_code, party_id)))
        return await _relay(ops["PUT", _TOKEN_PATH], _with_body(call, internal))

    async def patch_token(call: OcpiCall) -> web.Response:
        country_code, party_id = _owner(call)
        patch = validate_input(v211.TokenPatch, await read_json(call))
        # 2.2 made last_updated required: the time it is read.
        body = _with_body(call, _up(lambda: from_version(patch, V211, now=now())))
        if patch.type is not None:
            return await _relay(ops["PATCH", _TOKEN_PATH], typed(body, patch.type.value))
        for token_type in types:
            try:
                return await _relay(ops["PATCH", _TOKEN_PATH], typed(body, token_type))
            except UnknownTokenError:
                continue
        uid = path_id(call, "token_uid")
        raise UnknownTokenError(f"token_uid: unknown Token {uid!r} of {country_code}*{party_id}")

    return [
        Operation("GET", _TOKEN_PATH, get_token),
        Operation("PUT", _TOKEN_PATH, put_token),
        Operation("PATCH", _TOKEN_PATH, patch_token),
    ]


def _tokens_v230(provider: TokensReceiverProvider) -> list[Operation]:
    ops = _by_method(tokens_receiver_operations(provider))

    async def get_token(call: OcpiCall) -> web.Response:
        return await _relay(
            ops["GET", _TOKEN_PATH],
            call,
            lambda data: _single(
                lambda: to_version(v221.Token.model_validate(data), V230),
                "Token",
                call.params.get("token_uid", ""),
            ),
        )

    async def put_token(call: OcpiCall) -> web.Response:
        token = validate_input(v230.Token, await read_json(call))
        internal = _up(lambda: from_version(token, V230))
        return await _relay(ops["PUT", _TOKEN_PATH], _with_body(call, internal))

    async def patch_token(call: OcpiCall) -> web.Response:
        patch = validate_input(v230.TokenPatch, await read_json(call))
        internal = _up(lambda: from_version(patch, V230))
        return await _relay(ops["PATCH", _TOKEN_PATH], _with_body(call, internal))

    return [
        Operation("GET", _TOKEN_PATH, get_token),
        Operation("PUT", _TOKEN_PATH, put_token),
        Operation("PATCH", _TOKEN_PATH, patch_token),
    ]


# ---------------------------------------------------------------- commands


def _commands(
    provider: CommandsReceiverProvider, version: str, party_of: PartyOf | None
) -> list[Operation]:
    """The commands of ``version``; ``party_of``: the eMSP's party, for a 2.1.1 command's
    Token (which names no owner)."""
    ops = _by_method(commands_receiver_operations(provider))
    models: Mapping[Any, type[BaseModel]] = (
        v211.COMMAND_MODELS if version == V211 else v230.COMMAND_MODELS
    )

    def answer(data: Any) -> BaseModel:
        return to_version(v221.CommandResponse.model_validate(data), version)

    def command(name: str, model: type[BaseModel]) -> Operation:
        path = f"/{name}"

        async def handle(call: OcpiCall) -> web.Response:
            request = validate_input(model, await read_json(call))
            party = None if party_of is None else party_of(call.context)
            internal = _up(lambda: from_version(request, version, party=party))
            return await _relay(ops["POST", path], _with_body(call, internal), answer)

        return Operation("POST", path, handle)

    return [command(name.value, model) for name, model in models.items()]


def _charging_profiles_v230(provider: ChargingProfilesReceiverProvider) -> list[Operation]:
    ops = _by_method(charging_profiles_receiver_operations(provider))
    path = "/{session_id}"

    def up(data: Any) -> BaseModel:
        return to_version(v221.ChargingProfileResponse.model_validate(data), V230)

    async def get_active(call: OcpiCall) -> web.Response:
        return await _relay(ops["GET", path], call, up)

    async def put_profile(call: OcpiCall) -> web.Response:
        request = validate_input(v230.SetChargingProfile, await read_json(call))
        internal = _up(lambda: from_version(request, V230))
        return await _relay(ops["PUT", path], _with_body(call, internal), up)

    async def delete_profile(call: OcpiCall) -> web.Response:
        return await _relay(ops["DELETE", path], call, up)

    return [
        Operation("GET", path, get_active),
        Operation("PUT", path, put_profile),
        Operation("DELETE", path, delete_profile),
    ]


# ------------------------------------------------------------------ builders


def _sender_operations(
    modules: CpoModules, version: str, max_limit: int, cache_size: int
) -> dict[str, list[Operation]]:
    """The Sender modules (locations, tariffs, sessions, cdrs) in ``version``."""
    locations = modules.locations

    def listed(lister: Lister, kind: str, require_date_from: bool = False) -> list[Operation]:
        convert = _each(locations, kind, version)
        return [
            _list_operation(
                lister, convert, max_limit=max_limit, require_date_from=require_date_from
            )
        ]

    return {
        "locations": _locations_operations(locations, version, max_limit, cache_size),
        "tariffs": listed(modules.tariffs.list_tariffs, "Tariff"),
        "sessions": listed(modules.sessions.list_sessions, "Session", require_date_from=True),
        "cdrs": listed(modules.cdrs.list_cdrs, "CDR"),
    }


def cpo_operations_v211(
    modules: CpoModules,
    *,
    party_of: PartyOf,
    now: Now,
    max_limit: int = DEFAULT_MAX_LIMIT,
    cache_size: int = LOCATION_CACHE_SIZE,
) -> dict[str, list[Operation]]:
    """The CPO's modules in OCPI 2.1.1, by module identifier (locations, tariffs,
    sessions, cdrs, tokens, commands)."""
    operations = _sender_operations(modules, V211, max_limit, cache_size)
    operations["tokens"] = _tokens_v211(modules.tokens, now)
    operations["commands"] = _commands(modules.commands, V211, party_of)
    return operations


def cpo_operations_v230(
    modules: CpoModules,
    *,
    max_limit: int = DEFAULT_MAX_LIMIT,
    cache_size: int = LOCATION_CACHE_SIZE,
) -> dict[str, list[Operation]]:
    """The CPO's modules in OCPI 2.3.0, by module identifier (locations, tariffs,
    sessions, cdrs, tokens, commands and, with a provider, chargingprofiles)."""
    operations = _sender_operations(modules, V230, max_limit, cache_size)
    operations["tokens"] = _tokens_v230(modules.tokens)
    operations["commands"] = _commands(modules.commands, V230, None)
    if modules.charging_profiles is not None:
        operations["chargingprofiles"] = _charging_profiles_v230(modules.charging_profiles)
    return operations


def cpo_operations(
    version: str,
    modules: CpoModules,
    *,
    party_of: PartyOf,
    now: Now,
    max_limit: int = DEFAULT_MAX_LIMIT,
) -> dict[str, list[Operation]]:
    """The CPO's modules in ``version`` (2.1.1 or 2.3.0; 2.2.1 is :mod:`ocpi.server`'s
    own builders)."""
    if version == V211:
        return cpo_operations_v211(modules, party_of=party_of, now=now, max_limit=max_limit)
    if version == V230:
        return cpo_operations_v230(modules, max_limit=max_limit)
    raise ValueError(f"no OCPI {version} adapter (status {OcpiStatus.UNSUPPORTED_VERSION})")
