"""A real Payment Terminal Provider (PTP) platform in OCPI 2.3.0 for tests, written from
mod_payments.asciidoc (branch release-2.3.0-bugfixes) and the 2.3.0 OpenAPI files.

It is the 2.3.0 eMSP of :mod:`tests.roaming.emsp_versions` (handshake, Receiver
interfaces for sessions, CDRs, locations, tariffs and command results, each body
validated against the 2.3.0 models and OpenAPI) with what a PTP adds:

* **Credentials role OTHER**: 2.3.0's Role enum has no PTP (types.asciidoc Role: CPO,
  EMSP, NAP, NSP, OTHER, SCSP); its version details list ``payments`` with the SENDER
  interface ("Sender Interface, typically implemented by market roles like: PTP").
* **Payments Sender interface**, below ``{base}/payments``: ``GET terminals``
  (paginated: ``offset``/``limit``, ``X-Total-Count``, ``X-Limit``, ``Link``),
  ``GET terminals/{terminal_id}``, ``PUT`` and ``PATCH terminals/{terminal_id}`` (the CPO
  updates / assigns locations and EVSEs; a PATCH is merged into its terminal),
  ``POST terminals/activate`` (a TerminalActivation; the PTP sets the terminal_id:
  ``activated`` lists them) and ``POST terminals/{terminal_id}/deactivate``
  (``deactivated``). Bodies are checked against ``Terminal``, ``TerminalPatch`` and
  ``TerminalActivation`` (models and OpenAPI); an invalid one is 2001 and listed in
  ``invalid``.
* **Its client side**: :meth:`post_terminal` and :meth:`post_confirmation` to the CPO's
  Payments Receiver (commands, such as a StartSession with an ``authorization_reference``,
  go with :meth:`call`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

import ocpi.v230 as v230
from ocpi.transport import json_loads
from tests.ocpi.openapi import openapi_errors
from tests.roaming.emsp_versions import ENDPOINTS, Received, VersionedEmsp, _not_found, _ocpi

PAYMENT_MODELS: dict[str, type[BaseModel]] = {
    "Terminal": v230.Terminal,
    "TerminalPatch": v230.TerminalPatch,
    "TerminalActivation": v230.TerminalActivation,
    "FinancialAdviceConfirmation": v230.FinancialAdviceConfirmation,
}


@dataclass
class PaymentTerminalProvider(VersionedEmsp):
    version: str = "2.3.0"
    country_code: str = "DE"
    party_id: str = "PTP"
    name: str = "Payment Terminal Provider"
    terminals: dict[str, dict[str, Any]] = field(default_factory=dict)  # its own, by id
    activated: list[dict[str, Any]] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)

    def credentials(self, token: str) -> dict[str, Any]:
        body = super().credentials(token)
        body["roles"][0]["role"] = "OTHER"  # 2.3.0 has no PTP role
        return body

    def errors(self, module: str, schema: str, obj: Any) -> list[str]:
        if module != "payments":
            return super().errors(module, schema, obj)
        problems: list[str] = []
        try:
            PAYMENT_MODELS[schema].model_validate(obj)
        except ValidationError as exc:
            problems.append(str(exc))
        return problems + openapi_errors("payments", schema, obj, version="2.3.0")

    async def _details(self, request: web.Request) -> web.Response:
        if not self._authorized(request, self.token_a, self.token_b):
            return web.Response(status=401)
        modules = [*ENDPOINTS, ("payments", "SENDER")]
        endpoints = [
            {"identifier": m, "role": r, "url": f"{self.url}{self.base}/{m}"} for m, r in modules
        ]
        details = {"version": self.version, "endpoints": endpoints}
        self.validate("versions", "VersionDetails", details)
        return _ocpi(details)

    async def _module(self, request: web.Request) -> web.StreamResponse:
        rest = request.path.removeprefix(self.base + "/")
        if not rest.startswith("payments/"):
            return await super()._module(request)
        if not self._authorized(request, self.token_b):
            return web.Response(status=401)
        raw = await request.read()
        body = json_loads(raw) if raw else None
        parts = rest.split("/")[1:]
        if parts[-1] == "":
            parts = parts[:-1]
        if not parts or parts[0] != "terminals":
            return _not_found()
        schema = self._schema(request.method, parts[1:])
        if schema is not None:
            problems = self.errors("payments", schema, body)
            if problems:
                self.invalid.append((request.method, request.path, "; ".join(problems)))
                return _ocpi(code=2001, message="; ".join(problems)[:500])
        self.received.append(Received(request.method, request.path, body))
        return self._terminals(request, parts[1:], body)

    @staticmethod
    def _schema(method: str, parts: list[str]) -> str | None:
        if method == "PUT" and len(parts) == 1:
            return "Terminal"
        if method == "PATCH" and len(parts) == 1:
            return "TerminalPatch"
        if method == "POST" and parts == ["activate"]:
            return "TerminalActivation"
        return None

    def _terminals(self, request: web.Request, parts: list[str], body: Any) -> web.Response:
        method = request.method
        if method == "GET" and not parts:
            offset = int(request.query.get("offset", "0"))
            limit = min(int(request.query.get("limit", "2")), 2)  # small pages: Link
            ordered = sorted(
                self.terminals.values(), key=lambda t: (t["last_updated"], t["terminal_id"])
            )
            page = ordered[offset : offset + limit]
            for terminal in page:
                self.validate_payment("Terminal", terminal)
            headers = {"X-Total-Count": str(len(ordered)), "X-Limit": str(limit)}
            if offset + limit < len(ordered):
                url = request.url.update_query({"offset": str(offset + limit), "limit": str(limit)})
                headers["Link"] = f'<{url}>; rel="next"'
            return _ocpi(page, headers=headers)
        if method == "POST" and parts == ["activate"]:
            self.activated.append(body)
            return _ocpi()
        if method == "POST" and len(parts) == 2 and parts[1] == "deactivate":
            if parts[0] not in self.terminals:
                return _ocpi(code=2000, http=404, message="unknown terminal")
            self.deactivated.append(parts[0])
            return _ocpi()
        if len(parts) != 1:
            return _not_found()
        terminal_id = parts[0]
        held = self.terminals.get(terminal_id)
        if method == "GET":
            return _ocpi(held) if held is not None else _ocpi(code=2000, http=404)
        if method == "PUT":
            self.terminals[terminal_id] = body
            return _ocpi()
        if method == "PATCH":
            if held is None:
                return _ocpi(code=2000, http=404, message="unknown terminal")
            self.terminals[terminal_id] = held | body
            return _ocpi()
        return _not_found()

    def validate_payment(self, schema: str, obj: Any) -> None:
        problems = self.errors("payments", schema, obj)
        assert not problems, f"OCPI 2.3.0 payments/{schema} invalid: {problems}\n{obj}"

    # -- the client side -----------------------------------------------------------------

    async def post_terminal(self, terminal: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST a Terminal to the CPO's Receiver (kept as its own too)."""
        self.validate_payment("Terminal", terminal)
        self.terminals[terminal["terminal_id"]] = terminal
        status, _, body = await self.call(
            "POST", f"{self.cpo_endpoints['payments']}/terminals", terminal
        )
        return status, body

    async def post_confirmation(self, fac: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.validate_payment("FinancialAdviceConfirmation", fac)
        url = f"{self.cpo_endpoints['payments']}/financial-advice-confirmations"
        status, _, body = await self.call("POST", url, fac)
        return status, body
