"""Local authorization lists, the authorization cache and DataTransfer: domain to calls.

The commands of ``gateway.locallist`` (SendLocalList, GetLocalListVersion), ClearCache and
the central system's DataTransfer, as the 1.6 and 2.0.1 calls (2.1 re-types the 2.0.1
ones, ``gateway.csms.v21``), and the one answer the versions word differently: the list
version (1.6 ``listVersion``, 2.0.1 ``versionNumber``) is read into ``data["version"]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from ocpp.v201 import datatypes as types201

from gateway.domain import commands as cmd
from gateway.domain.clock import format_timestamp
from gateway.domain.errors import CommandNotSupported
from gateway.domain.models import TokenType

# 1.6 IdToken: CiString20; 2.0.1 IdTokenType.idToken: identifierString 36.
ID_TAG_16 = 20
ID_TOKEN_201 = 36

LocalListCommand = cmd.SendLocalList | cmd.GetLocalListVersion | cmd.ClearCache | cmd.DataTransfer


def _update_type(command: cmd.SendLocalList) -> str:
    return "Full" if command.full else "Differential"


def _tag_info_16(entry: cmd.LocalListEntry) -> dict[str, Any] | None:
    if entry.status is None:
        return None  # 1.6 section 5.15: a differential entry without idTagInfo is removed
    info: dict[str, Any] = {"status": entry.status.value}
    if entry.expires_at is not None:
        info["expiry_date"] = format_timestamp(entry.expires_at)
    if entry.parent_id and len(entry.parent_id) <= ID_TAG_16:
        info["parent_id_tag"] = entry.parent_id
    return info


def to_v16(command: LocalListCommand) -> Any:
    """The 1.6 call of a local list, cache or data transfer command (pure)."""
    match command:
        case cmd.SendLocalList():
            entries = []
            for entry in command.entries:
                if len(entry.id_token) > ID_TAG_16:
                    raise CommandNotSupported(f"OCPP 1.6 idTags are at most {ID_TAG_16} characters")
                item: dict[str, Any] = {"id_tag": entry.id_token}
                info = _tag_info_16(entry)
                if info is not None:
                    item["id_tag_info"] = info
                entries.append(item)
            return call16.SendLocalList(
                list_version=command.version,
                update_type=_update_type(command),
                local_authorization_list=entries,
            )
        case cmd.GetLocalListVersion():
            return call16.GetLocalListVersion()
        case cmd.ClearCache():
            return call16.ClearCache()
        case cmd.DataTransfer():
            return call16.DataTransfer(
                vendor_id=command.vendor_id, message_id=command.message_id, data=command.data
            )


TokenTypeOf = Callable[[TokenType | None, str, str | None], str]


def to_v201(command: LocalListCommand, token_type_of: TokenTypeOf) -> Any:
    """The 2.0.1 call (pure); ``token_type_of`` is ``gateway.csms.v201.id_token_type``,
    so that a list entry carries the same IdTokenEnumType as a remote start."""
    match command:
        case cmd.SendLocalList():
            entries = []
            for entry in command.entries:
                if len(entry.id_token) > ID_TOKEN_201:
                    raise CommandNotSupported(
                        f"OCPP 2.0.1 id tokens are at most {ID_TOKEN_201} characters"
                    )
                kind = token_type_of(entry.token_type, entry.id_token, entry.contract_id)
                info = None
                if entry.status is not None:  # D01: without idTokenInfo it is removed
                    group = None
                    if entry.parent_id and len(entry.parent_id) <= ID_TOKEN_201:
                        group = types201.IdTokenType(id_token=entry.parent_id, type="Central")
                    info = types201.IdTokenInfoType(
                        status=entry.status.value,
                        cache_expiry_date_time=(
                            None if entry.expires_at is None else format_timestamp(entry.expires_at)
                        ),
                        group_id_token=group,
                    )
                entries.append(
                    types201.AuthorizationData(
                        id_token=types201.IdTokenType(id_token=entry.id_token, type=kind),
                        id_token_info=info,
                    )
                )
            return call201.SendLocalList(
                version_number=command.version,
                update_type=_update_type(command),
                local_authorization_list=entries or None,
            )
        case cmd.GetLocalListVersion():
            return call201.GetLocalListVersion()
        case cmd.ClearCache():
            return call201.ClearCache()
        case cmd.DataTransfer():
            data: Any = command.data
            if command.data_is_json and data is not None:
                data = json.loads(data)  # 2.0.1 P01: data is any JSON value
            return call201.DataTransfer(
                vendor_id=command.vendor_id, message_id=command.message_id, data=data
            )


def read_result(command: cmd.Command, result: cmd.CommandResult) -> cmd.CommandResult:
    """The answer with its list version under ``version`` (GetLocalListVersion only)."""
    if not isinstance(command, cmd.GetLocalListVersion):
        return result
    version = result.data.get("listVersion", result.data.get("versionNumber"))
    if isinstance(version, bool) or not isinstance(version, int):
        return replace(result, status=cmd.CommandStatus.REJECTED)
    return replace(result, data={**result.data, "version": version})
