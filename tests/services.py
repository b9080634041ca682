"""Throwaway servers for the deployment tests: PostgreSQL, Redis and an S3-compatible store (moto).

Each runs on a free loopback port with its data in a temp folder and is stopped (and the folder
removed) when its context exits. The Debian packages come from scripts/install-services.sh, which
`make test` runs; a missing server fails the test with that hint instead of skipping it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "run scripts/install-services.sh (make test does) to install it"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 30.0, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s") from None
            time.sleep(0.1)


# -- PostgreSQL ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str
    password: str
    database: str
    data_dir: Path

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} password={self.password} dbname={self.database}"

    def connection_json(self, **extra: object) -> str:
        import json

        return json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": self.port,
                "login": self.user,
                "password": self.password,
                "schema": self.database,
                "extra": extra,
            }
        )


def _postgres_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError(f"PostgreSQL server binaries (initdb) not found: {INSTALL_HINT}")
    return Path(candidates[-1]).parent


def _as_postgres_user(argv: list[str]) -> list[str]:
    # The server refuses to run as root; under root (CI) run it as Debian's `postgres` user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@contextlib.contextmanager
def postgres_server(*, database: str = "warehouse") -> Iterator[PostgresServer]:
    """A fresh cluster (initdb) in a temp folder, served on a loopback port, stopped on exit."""
    bindir = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="ac_pg_"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, pg.pw_uid, pg.pw_gid)
    user, password = "audience", "audience-test-pw"
    pwfile = root / "pw"
    pwfile.write_text(password)
    if os.geteuid() == 0:
        os.chown(pwfile, pg.pw_uid, pg.pw_gid)
    port = free_port()
    subprocess.run(
        _as_postgres_user(
            [str(bindir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}", "-A", "scram-sha-256",
             "-E", "UTF8", "--no-locale", "--no-sync"]
        ),
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log")]
    try:
        subprocess.run(_as_postgres_user([*pg_ctl, "-o", options, "-w", "-t", "60", "start"]), check=True,
                       capture_output=True, text=True)  # fmt: skip
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run(
            [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "postgres", "-q",
             "-c", f"CREATE DATABASE {database}"],
            check=True, capture_output=True, text=True, env=env,
        )  # fmt: skip
        yield PostgresServer(port=port, user=user, password=password, database=database, data_dir=data)
    finally:
        subprocess.run(_as_postgres_user([*pg_ctl, "-m", "immediate", "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# -- Redis ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server on a loopback port with no persistence; yields its redis:// URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise RuntimeError(f"redis-server not found: {INSTALL_HINT}")
    root = Path(tempfile.mkdtemp(prefix="ac_redis_"))
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


# -- S3 (moto server mode) ----------------------------------------------------------------------
@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str = "testing-access-key"
    secret_key: str = "testing-secret-key"
    region: str = "us-east-1"

    def connection_json(self) -> str:
        import json

        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": self.secret_key,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": self.region},
            }
        )

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name=self.region,
        )  # fmt: skip


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3 in server mode on a loopback port (a real HTTP endpoint, shared by subprocesses)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_for_port(port, what="moto S3 server")
        yield S3Server(endpoint_url=f"http://127.0.0.1:{port}")
    finally:
        server.stop()
