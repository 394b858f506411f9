"""An eMSP that starts sessions by command and finds them again by its authorization_reference.

mod_commands StartSession.authorization_reference: "Reference to the authorization given by
the eMSP. When the eMSP provided an authorization_reference, this reference will be provided
in the relevant Session and/or CDR." This platform relies on exactly that: it never learns
the CPO's session id from anything but the objects carrying its own reference, both among
what the CPO pushed to it and among what the CPO's Sender interfaces serve on GET.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from ocpi.transport import json_loads
from tests.roaming.emsp import EmspPlatform, token_header

_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


@dataclass
class ReferencingEmsp(EmspPlatform):
    async def start_session(
        self, cpo_url: str, location_id: str, evse_uid: str, uid: str, reference: str
    ) -> dict[str, Any]:
        """POST START_SESSION to the CPO; its CommandResponse."""
        assert self.cpo_token is not None
        body = {
            "response_url": f"{self.url}/ocpi/2.2.1/commands/START_SESSION/{reference}",
            "token": self.token(uid),
            "location_id": location_id,
            "evse_uid": evse_uid,
            "authorization_reference": reference,
        }
        async with aiohttp.ClientSession() as s, s.post(
            f"{cpo_url}/ocpi/2.2.1/commands/START_SESSION", json=body, headers=token_header(self.cpo_token)
        ) as r:
            assert r.status == 200, await r.text()
            answer = json_loads(await r.read())
        assert answer["status_code"] == 1000, answer
        return dict(answer["data"])

    def command_results(self, reference: str) -> list[Any]:
        return [b for m, p, b in self.received if m == "POST" and p.endswith(f"/commands/START_SESSION/{reference}")]

    def sessions(self) -> dict[str, dict[str, Any]]:
        """Every session as the pushes left it (PUT replaces, PATCH merges), by id."""
        state: dict[str, dict[str, Any]] = {}
        for method, path, body in self.received:
            if "/sessions/" not in path:
                continue
            session_id = path.rsplit("/", 1)[1]
            if method == "PUT":
                state[session_id] = dict(body)
            elif method == "PATCH":
                state[session_id] = state.get(session_id, {}) | dict(body)
        return state

    def sessions_by_reference(self, reference: str) -> list[dict[str, Any]]:
        return [s for s in self.sessions().values() if s.get("authorization_reference") == reference]

    def cdrs(self) -> list[dict[str, Any]]:
        return [dict(b) for m, p, b in self.received if m == "POST" and p.endswith("/cdrs")]

    def cdrs_by_reference(self, reference: str) -> list[dict[str, Any]]:
        return [c for c in self.cdrs() if c.get("authorization_reference") == reference]

    async def pull(self, cpo_url: str, module: str) -> list[dict[str, Any]]:
        """GET every object of the CPO's Sender interface, following its pagination."""
        assert self.cpo_token is not None
        url: str | None = f"{cpo_url}/ocpi/2.2.1/{module}?date_from=2000-01-01T00:00:00Z&limit=5"
        objects: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as s:
            while url is not None:
                async with s.get(url, headers=token_header(self.cpo_token)) as r:
                    assert r.status == 200, await r.text()
                    page = json_loads(await r.read())
                    link = r.headers.get("Link", "")
                assert page["status_code"] == 1000, page
                objects += page["data"]
                found = _NEXT.search(link)
                url = found.group(1) if found else None
        return objects

    async def pull_by_reference(self, cpo_url: str, module: str, reference: str) -> list[dict[str, Any]]:
        return [o for o in await self.pull(cpo_url, module) if o.get("authorization_reference") == reference]
