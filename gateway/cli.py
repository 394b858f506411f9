"""Command line: ``ocpi-gateway serve`` and ``ocpi-gateway tariff ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> int:
    from gateway.app import run_server
    from gateway.settings import Settings

    overrides = {
        key: value
        for key, value in {
            "host": args.host,
            "port": args.port,
            "data_dir": args.data_dir,
            "tls_cert": args.tls_cert,
            "tls_key": args.tls_key,
            "tls_client_ca": args.tls_client_ca,
        }.items()
        if value is not None
    }
    settings = Settings(**overrides)
    return run_server(settings)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["tariff"]:
        # The pricing command lives with the pricer in the protocol package.
        from ocpi.tariffs.cli import main as tariff_main

        status: int = tariff_main(argv[1:])
        return status

    parser = argparse.ArgumentParser(prog="ocpi-gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway (OCPP, OCPI and admin API)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8180)")
    serve.add_argument("--data-dir", help="directory for the embedded database (default ./data)")
    serve.add_argument("--tls-cert", help="PEM server certificate chain (OCPP security profile 2)")
    serve.add_argument("--tls-key", help="PEM private key of --tls-cert")
    serve.add_argument(
        "--tls-client-ca",
        help="PEM CA bundle; require client certificates chaining to it (profile 3)",
    )
    sub.add_parser("tariff", help="price CDRs from OCPI tariffs (see `tariff --help`)")
    args = parser.parse_args(argv)
    return _serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
