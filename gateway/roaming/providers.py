"""The OCPI module providers of the CPO side, handed to ``ocpi.server`` route builders.

Routes are built with the application, before start-up opens the store; the
services are attached here by the composition root once they exist.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from gateway.roaming.catalog import LocationService, TariffService
from gateway.roaming.charging_profiles import ChargingProfilesReceiver
from gateway.roaming.commands import CommandsReceiver
from gateway.roaming.partners import partner_of
from gateway.roaming.sessions import SessionService
from gateway.roaming.tokens import TokensReceiver
from ocpi.server import OcpiRequestContext
from ocpi.transport import PageRequest, RawJson, ServerError
from ocpi.v221 import (
    CDR,
    CancelReservation,
    ChargingProfileResponse,
    CommandResponse,
    Location,
    ReserveNow,
    Session,
    SetChargingProfile,
    StartSession,
    StopSession,
    Tariff,
    Token,
    TokenPatch,
    UnlockConnector,
)


def _partner_id(context: OcpiRequestContext) -> str:
    return partner_of(context.party).id


class CpoProviders:
    def __init__(self) -> None:
        self.locations: LocationService | None = None
        self.tariffs: TariffService | None = None
        self.tokens: TokensReceiver | None = None
        self.sessions: SessionService | None = None
        self.commands: CommandsReceiver | None = None
        self.charging_profiles: ChargingProfilesReceiver | None = None

    def _locations(self) -> LocationService:
        if self.locations is None:
            raise ServerError("locations are not available yet")
        return self.locations

    def _tokens(self) -> TokensReceiver:
        if self.tokens is None:
            raise ServerError("tokens are not available yet")
        return self.tokens

    def _sessions(self) -> SessionService:
        if self.sessions is None:
            raise ServerError("sessions are not available yet")
        return self.sessions

    async def list_sessions(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[Session], int]:
        # Each eMSP sees the sessions of its own drivers only.
        return await self._sessions().sessions_page(_partner_id(context), page)

    async def list_cdrs(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[CDR], int]:
        return await self._sessions().cdrs_page(_partner_id(context), page)

    def _tariffs(self) -> TariffService:
        if self.tariffs is None:
            raise ServerError("tariffs are not available yet")
        return self.tariffs

    async def list_locations(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[Location | RawJson], int]:
        # Kept serialized between requests (gateway.roaming.location_pages).
        return await self._locations().page_json(page)

    async def get_location(self, context: OcpiRequestContext, location_id: str) -> Location | None:
        return await self._locations().get(location_id)

    async def list_tariffs(
        self, context: OcpiRequestContext, page: PageRequest
    ) -> tuple[Sequence[Tariff], int]:
        return await self._tariffs().page(page)

    async def get_token(
        self,
        context: OcpiRequestContext,
        country_code: str,
        party_id: str,
        uid: str,
        token_type: str,
    ) -> Token | None:
        return await self._tokens().get_token(context, country_code, party_id, uid, token_type)

    async def put_token(self, context: OcpiRequestContext, token: Token) -> bool:
        return await self._tokens().put_token(context, token)

    async def patch_token(
        self,
        context: OcpiRequestContext,
        country_code: str,
        party_id: str,
        uid: str,
        token_type: str,
        patch: TokenPatch,
    ) -> Token | None:
        return await self._tokens().patch_token(
            context, country_code, party_id, uid, token_type, patch
        )

    def _commands(self) -> CommandsReceiver:
        if self.commands is None:
            raise ServerError("commands are not available yet")
        return self.commands

    async def start_session(
        self, context: OcpiRequestContext, command: StartSession
    ) -> CommandResponse:
        return await self._commands().start_session(context, command)

    async def stop_session(
        self, context: OcpiRequestContext, command: StopSession
    ) -> CommandResponse:
        return await self._commands().stop_session(context, command)

    async def reserve_now(
        self, context: OcpiRequestContext, command: ReserveNow
    ) -> CommandResponse:
        return await self._commands().reserve_now(context, command)

    async def cancel_reservation(
        self, context: OcpiRequestContext, command: CancelReservation
    ) -> CommandResponse:
        return await self._commands().cancel_reservation(context, command)

    async def unlock_connector(
        self, context: OcpiRequestContext, command: UnlockConnector
    ) -> CommandResponse:
        return await self._commands().unlock_connector(context, command)

    def _charging_profiles(self) -> ChargingProfilesReceiver:
        if self.charging_profiles is None:
            raise ServerError("charging profiles are not available yet")
        return self.charging_profiles

    async def get_active_charging_profile(
        self, context: OcpiRequestContext, session_id: str, duration: int, response_url: str
    ) -> ChargingProfileResponse:
        return await self._charging_profiles().get_active_charging_profile(
            context, session_id, duration, response_url
        )

    async def set_charging_profile(
        self, context: OcpiRequestContext, session_id: str, request: SetChargingProfile
    ) -> ChargingProfileResponse:
        return await self._charging_profiles().set_charging_profile(context, session_id, request)

    async def clear_charging_profile(
        self, context: OcpiRequestContext, session_id: str, response_url: str
    ) -> ChargingProfileResponse:
        return await self._charging_profiles().clear_charging_profile(
            context, session_id, response_url
        )


PROVIDERS = web.AppKey("cpo_providers", CpoProviders)
