"""Command line: ``python -m airflow_provider_activecampaign.emulator --port 8025 [--api-key K]``.

Prints one line with the URL once it accepts connections, then serves until SIGTERM or SIGINT
(exit status 0). Binds loopback only; any other ``--host`` is refused with exit status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_activecampaign.emulator.server import EmulatorServer, loopback_address


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m airflow_provider_activecampaign.emulator",
        description="Offline ActiveCampaign API v3 emulator (loopback only). "
        "Admin API without auth under /_emulator/ (state, faults, reset).",
    )
    p.add_argument("--port", type=int, default=8025, help="TCP port (0: pick a free one; default 8025)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--api-key", default="emulator-api-key", help="expected Api-Token (default emulator-api-key)")
    p.add_argument("--user", default="emulator", help="username returned by users/me (default emulator)")
    p.add_argument("--user-id", default="1", help="user id returned by users/me (default 1)")
    p.add_argument(
        "--requests-per-second",
        type=float,
        default=5,
        help="sliding 1 s window limit; 0 disables (default 5)",
    )
    p.add_argument("--retry-after", type=float, default=1, help="Retry-After seconds sent with 429 (default 1)")
    p.add_argument(
        "--import-delay",
        type=float,
        default=0.5,
        help="seconds until a bulk import batch is processed (default 0.5)",
    )
    p.add_argument(
        "--bulk-imports-per-minute",
        type=int,
        default=100,
        help="multi-contact imports per minute; 0 disables",
    )
    p.add_argument(
        "--single-imports-per-minute",
        type=int,
        default=20,
        help="single-contact imports per minute; 0 disables",
    )
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        loopback_address(args.host)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = EmulatorServer(
        args.api_key,
        host=args.host,
        port=args.port,
        user=args.user,
        user_id=args.user_id,
        requests_per_second=args.requests_per_second or None,
        retry_after=args.retry_after,
        import_delay=args.import_delay,
        bulk_imports_per_minute=args.bulk_imports_per_minute or None,
        single_imports_per_minute=args.single_imports_per_minute or None,
        log_level=args.log_level,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"ActiveCampaign emulator listening on {server.url} (Api-Token: {server.api_key})", flush=True)
    try:
        while not stop.wait(0.5):
            if not server.running:
                print("error: the emulator's server thread stopped", file=sys.stderr)
                return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
