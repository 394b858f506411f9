"""Charger certificates in the app: the certificate authorities the settings name, the
:class:`~gateway.csms.certificates.CertificateService` the central system and the admin
API use, and its renewal job (once per cluster, under the ``certificates`` lease).

Part of the composition root (imports settings, the central system, leases); the work
itself is in :mod:`gateway.csms.certificates`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from gateway.csms.certificates import (
    CertificateIssuer,
    CertificateService,
    ExternalCa,
    LocalCa,
    renew_forever,
)
from gateway.domain.clock import Clock
from gateway.keys import CLOCK, CSMS, ROUTER, SETTINGS, STORE
from gateway.leases import LEASES
from gateway.settings import ConfigError, Settings

CERTIFICATES = web.AppKey("certificates", CertificateService)


def certificate_issuers(settings: Settings, clock: Clock) -> list[CertificateIssuer]:
    """The operator's CA (first) and the external CA, as set; :class:`ConfigError` for
    settings the gateway cannot start with."""
    issuers: list[CertificateIssuer] = []
    cert, key = settings.certificate_ca_cert, settings.certificate_ca_key
    if (cert is None) != (key is None):
        missing = "certificate_ca_key" if key is None else "certificate_ca_cert"
        raise ConfigError(missing, "the CA needs both its certificate and its key")
    if cert is not None and key is not None:
        try:
            issuers.append(LocalCa.load(cert, key, settings.certificate_validity_days, clock))
        except ValueError as exc:
            raise ConfigError(("certificate_ca_cert", "certificate_ca_key"), str(exc)) from None
    url = settings.certificate_external_ca_url
    if url is not None:
        if not url.startswith(("https://", "http://")):
            raise ConfigError("certificate_external_ca_url", "an http(s) URL")
        token = settings.certificate_external_ca_token
        issuers.append(
            ExternalCa(
                url,
                token.get_secret_value() if token is not None else None,
                settings.call_timeout,
            )
        )
    elif settings.certificate_external_ca_token is not None:
        raise ConfigError("certificate_external_ca_token", "needs certificate_external_ca_url")
    return issuers


async def certificates_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, store, clock = app[SETTINGS], app[STORE], app[CLOCK]
    service = CertificateService(
        store,
        clock,
        certificate_issuers(settings, clock),
        organization=settings.certificate_organization,
        cn_is_charger_id=settings.tls_cn_is_charger_id,
        renew_before=timedelta(days=settings.certificate_renew_days),
    )
    csms = app[CSMS]
    # CertificateSigned goes to the charger that sent its CSR to this process.
    service.sender = csms
    csms.certificates = service
    app[CERTIFICATES] = service
    router = app[ROUTER]  # renewal: whichever process holds each charger
    job = app[LEASES].start(
        "certificates",
        lambda: renew_forever(service, router, settings.certificate_check_interval),
    )
    yield
    await job.stop()
    csms.certificates = None
    await service.close()
