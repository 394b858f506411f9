"""Typed keys of the resources the composition root puts into the aiohttp app."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.cluster.node import ClusterNode
from gateway.cluster.router import CommandRouter
from gateway.csms.core import CentralSystem
from gateway.csms.endpoint import OcppEndpoint
from gateway.domain.authorization import ChainAuthorizer
from gateway.domain.clock import Clock, IdFactory
from gateway.domain.events import EventBus
from gateway.reports.recorder import StatusRecorder
from gateway.settings import Settings
from gateway.storage.base import Store

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
IDS = web.AppKey("ids", IdFactory)
STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", EventBus)
CSMS = web.AppKey("csms", CentralSystem)
AUTHORIZER = web.AppKey("authorizer", ChainAuthorizer)
ENDPOINT = web.AppKey("ocpp_endpoint", OcppEndpoint)
ADMIN_TOKEN = web.AppKey("admin_token", str)
HTTP = web.AppKey("http_client", aiohttp.ClientSession)
# This process in the cluster: messages to it, and the ``changes`` channel to all.
CLUSTER = web.AppKey("cluster", ClusterNode)
# The one command path to a charger, connected here or to another process.
ROUTER = web.AppKey("command_router", CommandRouter)
# Writes the status history (connection and connector status changes) for the reports.
HISTORY = web.AppKey("status_history", StatusRecorder)
