"""The operator's web dashboard at ``/dashboard/``: static pages (hand-written HTML, CSS
and JavaScript shipped as package data, no build step) that call the admin API with a
session cookie, the sign-in that issues that cookie, and plots drawn on the server as
SVG (:mod:`gateway.dashboard.svg`). Imports ``gateway.admin`` (sessions, the event
feed), ``gateway.keys`` and the standard library; nothing imports it but the
composition root."""
