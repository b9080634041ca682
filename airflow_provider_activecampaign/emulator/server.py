"""Run the emulator with uvicorn in a background thread: ``with EmulatorServer() as ac: ...``."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from airflow_provider_activecampaign.emulator.account import Account
from airflow_provider_activecampaign.emulator.app import create_app
from airflow_provider_activecampaign.emulator.faults import Fault, FaultInjector
from airflow_provider_activecampaign.emulator.limits import EmulatorConfig


def loopback_address(host: str) -> str:
    """The IP to bind for ``host``, refusing anything that is not loopback.

    The emulator has an unauthenticated admin API and a well-known key; it must never be reachable
    from another machine.
    """
    candidate = "127.0.0.1" if host == "localhost" else host
    try:
        ip = ipaddress.ip_address(candidate)
    except ValueError:
        raise ValueError(f"the emulator binds loopback addresses only; {host!r} is not an IP address") from None
    if not ip.is_loopback:
        raise ValueError(f"the emulator binds loopback addresses only (127.0.0.1 or ::1); refusing {host!r}")
    return str(ip)


class EmulatorServer:
    """An ActiveCampaign emulator served over loopback HTTP from a background thread.

    Use as a context manager (or ``start()`` / ``stop()``). ``url`` is the base URL to put in an
    Airflow connection's host; ``account`` (alias ``state``) is the live in-memory account for
    assertions; the fault methods arm failures for the next requests.
    """

    def __init__(
        self,
        api_key: str = "emulator-api-key",
        *,
        requests_per_second: float | None = 5,
        retry_after: float = 1,
        import_delay: float = 0.5,
        bulk_imports_per_minute: int | None = 100,
        single_imports_per_minute: int | None = 20,
        bulk_window: float = 60.0,
        max_contacts_per_import: int = 250,
        max_import_bytes: int = 400_000,
        user: str = "emulator",
        user_id: str = "1",
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        account: Account | None = None,
        uvicorn_options: dict[str, Any] | None = None,
    ) -> None:
        self.host = loopback_address(host)
        self.port = port
        self.log_level = log_level
        # Extra uvicorn.Config arguments, e.g. {"http": "h11", "loop": "asyncio"}.
        self.uvicorn_options = dict(uvicorn_options or {})
        if account is None:
            account = Account(
                EmulatorConfig(
                    api_key=api_key,
                    user=user,
                    user_id=user_id,
                    requests_per_second=requests_per_second,
                    retry_after=retry_after,
                    import_delay=import_delay,
                    bulk_imports_per_minute=bulk_imports_per_minute,
                    single_imports_per_minute=single_imports_per_minute,
                    bulk_window=bulk_window,
                    max_contacts_per_import=max_contacts_per_import,
                    max_import_bytes=max_import_bytes,
                )
            )
        self.account = account
        self.app = create_app(account)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    @property
    def state(self) -> Account:
        """Alias of ``account`` (the name ARCHITECTURE.md uses)."""
        return self.account

    @property
    def api_key(self) -> str:
        return self.account.config.api_key

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without /api/3 (like the API URL in ActiveCampaign's settings)."""
        if self._socket is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        """``url`` + ``/api/3``."""
        return self.url + "/api/3"

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        """Bind the port, start uvicorn in a daemon thread and wait until it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self.log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
            **self.uvicorn_options,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"ac-emulator-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                self._cleanup()
                raise RuntimeError("the emulator's server thread exited during start-up (see the log)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the emulator did not start within {timeout} s")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to shut down, wait for the thread, release the port. Idempotent."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None
        self._socket = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- fault injection and test conveniences (delegating to the account) ----------------------

    @property
    def faults(self) -> FaultInjector:
        return self.account.faults

    def fail_next(self, count: int | None = 1, status: int = 500, **options: Any) -> Fault:
        """Next ``count`` requests (``path=`` prefix, ``method=``, ``retry_after=``) get ``status``."""
        return self.faults.fail_next(count, status, **options)

    def throttle_next(self, count: int | None = 1, **options: Any) -> Fault:
        """Next ``count`` requests get 429 with ``Retry-After`` (``retry_after=`` seconds)."""
        return self.faults.throttle_next(count, **options)

    def drop_next(self, count: int | None = 1, **options: Any) -> Fault:
        """Next ``count`` requests lose their connection (``after_processing=True``: after the write)."""
        return self.faults.drop_next(count, **options)

    def slow_next(self, count: int | None = 1, delay: float = 1.0, **options: Any) -> Fault:
        """Next ``count`` requests are answered after ``delay`` seconds."""
        return self.faults.slow_next(count, delay, **options)

    def block_account(self, blocked: bool = True) -> None:
        """Every API request gets 402 (payment issue) until unblocked."""
        self.account.blocked = blocked

    def reset(self) -> None:
        """Fresh account (seeded again), no faults, empty request log."""
        self.account.reset()
