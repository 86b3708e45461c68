"""`aftersales dev`: the whole system as one process tree on one machine.

Starts the Temporal dev server (state in the data dir, so cases survive a restart),
the order, inventory and courier simulators, a local SMTP sink (unless
AFTERSALES_SMTP_HOST is set), a worker, the scheduler and the web app as child
processes; prints a
line with `ready` and the URL once /healthz answers; stops every child on Ctrl-C or
SIGTERM. A child that dies takes the stack down with a message naming it.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from aftersales.settings import Settings, default_database_url
from aftersales.temporal import temporal_cli_path

PR_SET_PDEATHSIG = 1
# The retailer's systems, simulated: name, module, preferred port.
SIMULATORS = (
    ("order-system", "simulators.order_system", 5101),
    ("inventory-system", "simulators.inventory_system", 5102),
    ("courier-system", "simulators.courier_system", 5103),
)
STARTUP_TIMEOUT = 90.0


def _die_with_parent() -> None:
    # Linux: children get SIGTERM if `aftersales dev` itself is killed, so none is
    # left behind even after a SIGKILL of the parent.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


class DevStack:
    def __init__(self, settings: Settings, host: str, port: int, temporal_port: int,
                 data_dir_given: bool = False) -> None:
        self.host = host
        self.port = port
        self.temporal_port = temporal_port
        data_dir = Path(settings.data_dir).resolve()
        database_url = settings.database_url
        if data_dir_given and not os.environ.get("AFTERSALES_DATABASE_URL"):
            database_url = default_database_url(str(data_dir))
        self.data_dir = data_dir
        self.settings = settings.with_(
            data_dir=str(data_dir),
            database_url=database_url,
            public_url=os.environ.get("AFTERSALES_PUBLIC_URL") or f"http://{host}:{port}",
        )
        self.children: list[tuple[str, subprocess.Popen]] = []
        self._stopping = False

    # ------------------------------------------------------------------ run

    def run(self, demo: bool = False) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self._start_all()
            if demo:
                from aftersales.demo import seed_demo

                for line in seed_demo(self.settings, f"http://{self.host}:{self.port}"):
                    print(line, flush=True)
            base = f"http://{self.host}:{self.port}"
            print(f"pages: sign in at {base}/login (handlers land on the desk, supervisors "
                  f"on the console); customers ask at {base}/request", flush=True)
            print(f"Aftersales ready at {base}", flush=True)
            return self._watch()
        except _Stop:
            return 0
        except StartupError as err:
            print(f"aftersales dev: {err}", file=sys.stderr, flush=True)
            return 1
        finally:
            self.stop()

    def _start_all(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        from db.engine import migrate

        migrate(self.settings.database_url)
        if not self.settings.temporal_address_set:
            self._start_temporal()
        if not self.settings.courier_webhook_secret:
            # One secret per data dir, shared by the courier simulator and the web app.
            self.settings = self.settings.with_(
                courier_webhook_secret=self._kept_secret("courier_webhook_secret"))
        if not self.settings.secret_key:
            # The web app's session key: random, made once per data dir and kept, so
            # sign-ins survive a restart and no two machines share it.
            self.settings = self.settings.with_(secret_key=self._kept_secret("secret_key"))
        self.settings = self.settings.with_(dev_stack=True)
        urls = {}
        for name, module, preferred in SIMULATORS:
            port = free_port() if _port_busy(preferred) else preferred
            extra_env = {}
            if name == "courier-system":
                extra_env["AFTERSALES_COURIER_WEBHOOK_URL"] = \
                    f"http://{self.host}:{self.port}/webhooks/courier"
            self._spawn(name, [sys.executable, "-m", module, "--port", str(port),
                               "--data-dir", str(self.data_dir / "simulators")],
                        extra_env=extra_env)
            if not wait_for_port("127.0.0.1", port, 30):
                raise StartupError(f"the {name} simulator did not start")
            urls[name] = f"http://127.0.0.1:{port}"
        self.settings = self.settings.with_(
            order_system_url=urls["order-system"],
            inventory_system_url=urls["inventory-system"],
            courier_system_url=urls["courier-system"],
        )
        if not self.settings.smtp_host:
            self._start_mail_sink()
        self._spawn("worker", [sys.executable, "-m", "aftersales.cli", "worker"])
        self._spawn("scheduler", [sys.executable, "-m", "aftersales.cli", "scheduler"])
        self._spawn("web", [sys.executable, "-m", "aftersales.cli", "web", "--host",
                            self.host, "--port", str(self.port)])
        self._wait_healthy()
        self._start_mail_in()

    def _kept_secret(self, name: str) -> str:
        """A random secret kept in the data dir (readable by its owner only)."""
        secret_file = self.data_dir / name
        if not secret_file.exists():
            secret_file.touch(mode=0o600)
            secret_file.write_text(secrets.token_urlsafe(32))
        return secret_file.read_text().strip()

    def _start_mail_in(self) -> None:
        """The inbound-mail router with a local SMTP receiver: mail sent to it opens
        cases and answers them as mail to the service address would."""
        port = self.settings.mail_in_port or free_port()
        self._spawn("mail-in", [sys.executable, "-m", "aftersales.cli", "mail-in", "--smtp"],
                    extra_env={"AFTERSALES_MAIL_IN_PORT": str(port)})
        if not wait_for_port(self.settings.mail_in_host, port, 30):
            raise StartupError("the inbound mail receiver did not start")
        # The receiver itself prints "mail in on HOST:PORT" once it listens.

    def _start_temporal(self) -> None:
        if _port_busy(self.temporal_port):
            raise StartupError(f"port {self.temporal_port} is taken; pass --temporal-port or "
                               "set AFTERSALES_TEMPORAL_ADDRESS to use a running server")
        ui_port = free_port()
        self._spawn("temporal", [
            temporal_cli_path(), "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(self.temporal_port),
            "--ui-port", str(ui_port),
            "--db-filename", str(self.data_dir / "temporal.db"),
            # WAL with synchronous=normal: about twice the throughput of the defaults;
            # survives a process crash, may lose the last moments on a power cut.
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
            "--log-level", "warn",
        ], log_name="temporal")
        if not wait_for_port("127.0.0.1", self.temporal_port, 60):
            raise StartupError("the Temporal dev server did not start; see "
                               f"{self.data_dir / 'logs' / 'temporal.log'}")
        self.settings = self.settings.with_(
            temporal_address=f"127.0.0.1:{self.temporal_port}", temporal_address_set=True)
        print(f"Temporal dev server on 127.0.0.1:{self.temporal_port}, "
              f"UI http://127.0.0.1:{ui_port}", flush=True)

    def _start_mail_sink(self) -> None:
        """A local SMTP server that keeps every message in the data dir; the worker
        sends to it and the web app shows it at /dev/mail. Not started when
        AFTERSALES_SMTP_HOST is set: then mail goes where that says."""
        port = free_port()
        mailbox = self.data_dir / "mail" / "mailbox.jsonl"
        self._spawn("mail-sink", [sys.executable, "-m", "aftersales.mailsink", "--port",
                                  str(port), "--mailbox", str(mailbox)])
        if not wait_for_port("127.0.0.1", port, 30):
            raise StartupError("the local SMTP sink did not start")
        self.settings = self.settings.with_(smtp_host="127.0.0.1", smtp_port=port,
                                            smtp_tls="none", smtp_user="", smtp_password="",
                                            dev_mailbox=str(mailbox))
        print(f"Mail sink on 127.0.0.1:{port}; received mail at "
              f"http://{self.host}:{self.port}/dev/mail", flush=True)

    def _spawn(self, name: str, argv: list[str], log_name: str | None = None,
               extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **self.settings.to_env(), **(extra_env or {})}
        stdout = None
        if log_name:
            logs = self.data_dir / "logs"
            logs.mkdir(exist_ok=True)
            stdout = open(logs / f"{log_name}.log", "ab")
        proc = subprocess.Popen(argv, env=env, stdout=stdout,
                                stderr=subprocess.STDOUT if stdout else None,
                                start_new_session=True,
                                preexec_fn=_die_with_parent)  # noqa: PLW1509 - no threads yet
        self.children.append((name, proc))

    def _wait_healthy(self) -> None:
        url = f"http://{self.host}:{self.port}/healthz"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            self._check_children()
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise StartupError(f"{url} did not answer 200 within {STARTUP_TIMEOUT:.0f}s")

    def _watch(self) -> int:
        while True:
            self._check_children()
            time.sleep(0.5)

    def _check_children(self) -> None:
        if self._stopping:
            raise _Stop()
        for name, proc in self.children:
            code = proc.poll()
            if code is not None:
                raise StartupError(f"{name} exited with code {code}; stopping everything")

    # ------------------------------------------------------------------ stop

    def _on_signal(self, _signum, _frame) -> None:
        self._stopping = True
        raise _Stop()

    def stop(self) -> None:
        """Terminate children newest first; kill what does not stop in 10 s."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.children.clear()


class StartupError(Exception):
    pass


class _Stop(Exception):
    pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
