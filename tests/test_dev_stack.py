"""End to end: `aftersales dev` as a subprocess on free ports; a complaint walked to
closed over real HTTP; a restart that finds the case still there; no child left."""

from __future__ import annotations

import json
import os
import queue
import signal
import smtplib
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx
import pytest

from aftersales.devstack import free_port
from aftersales.settings import default_database_url

pytestmark = pytest.mark.slow


class DevProcess:
    def __init__(self, data_dir: Path, port: int, temporal_port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
        env["AFTERSALES_SIM_COURIER_STEP"] = "0.3"  # parcels move fast in this test
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aftersales.cli", "dev", "--demo", "--port", str(port),
             "--temporal-port", str(temporal_port), "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_ready(self, timeout: float = 120) -> dict[str, str]:
        found: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if "demo API token for alice:" in line:
                found["token"] = line.split()[-1]
            if "ready" in line and "http://" in line:
                found["url"] = line.split()[-1]
                return found
        raise AssertionError("aftersales dev did not get ready:\n" + "".join(self.output[-40:]))

    def children(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.proc.pid:
                    pids.append(int(entry.name))
        return pids

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self._pump_thread.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_dev_stack_walks_a_complaint_and_survives_restart(tmp_path):
    port, temporal_port = free_port(), free_port()
    dev = DevProcess(tmp_path / "var", port, temporal_port)
    try:
        info = dev.wait_ready()
        base, headers = info["url"], {"Authorization": f"Bearer {info['token']}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            assert http.get("/healthz").json()["status"] == "ok"
            # The demo's teams: its cases arrived assigned, each in its team.
            seeded = http.get("/api/v1/cases").json()["items"]
            assert sorted((c["team"], c["assignee"]) for c in seeded) == [
                ("complaints", "alice"), ("complaints", "alice"), ("returns", "bob"),
                ("vip", "carol")], [(c["id"], c["team"], c["assignee"]) for c in seeded]
            # The demo customer with an email address got hers through the local sink.
            deadline = time.monotonic() + 30
            while "emma@example.com" not in (mail := http.get("/dev/mail")).text:
                assert time.monotonic() < deadline, "no demo mail at /dev/mail"
                time.sleep(0.3)
            assert mail.status_code == 200 and "is open" in mail.text
            orders = subprocess.run(
                [sys.executable, "-m", "aftersales.cli", "demo", "orders", "--json"],
                capture_output=True, text=True, timeout=60,
                env={**os.environ, "AFTERSALES_ORDER_SYSTEM_URL": _order_url(dev)},
            )
            assert orders.returncode == 0, orders.stderr
            assert '"SO-10001"' in orders.stdout

            case = http.post("/api/v1/cases", json={
                "kind": "complaint", "channel": "app", "order_id": "SO-10005",
                "customer": {"id": "C-1005", "name": "刘洋", "phone": "13800000005"},
                "description": "Cherries arrived warm and half of them were mouldy.",
            }).json()
            case_id = case["id"]
            token = case["customer_url"].rsplit("/", 1)[1]
            assert case["stage"] == "confirm"
            for action, body in (
                ("confirm", {"note": "photos received"}),
                ("analyze", {"root_cause": "product_quality", "responsible_party": "supplier",
                             "note": "cold chain broke at the supplier"}),
                ("resolve", {"resolution": {"type": "compensation", "points": 500},
                             "note": "500 points"}),
            ):
                response = http.post(f"/api/v1/cases/{case_id}/{action}", json=body)
                assert response.status_code == 200, response.text
            deadline = time.monotonic() + 30
            while http.get(f"/api/v1/cases/{case_id}").json()["stage"] != "feedback":
                assert time.monotonic() < deadline, "resolution did not finish"
                time.sleep(0.2)
            assert http.post(f"/api/v1/status/{token}/feedback",
                             json={"rating": 4, "comment": "fine"}).status_code == 200
            closed = http.post(f"/api/v1/cases/{case_id}/revisit",
                               json={"outcome": "satisfied", "note": "called"}).json()
            assert closed["stage"] == "closed"
            timeline_before = closed["timeline"]
            # A return through the real courier simulator and its signed webhooks.
            ret = http.post("/api/v1/cases", json={
                "kind": "return", "channel": "app", "order_id": "SO-10008",
                "customer": {"id": "C-1008", "name": "杨磊"},
                "items": [{"sku": "SKU-KETTLE-4", "quantity": 1}],
                "description": "不想要了，七天无理由退货",
            }).json()
            # The demo routes returns to bob's team: bob works it, with a token of his.
            assert (ret["team"], ret["assignee"]) == ("returns", "bob")
            made = subprocess.run(
                [sys.executable, "-m", "aftersales.cli", "token", "create", "bob"],
                capture_output=True, text=True, timeout=60,
                env={**os.environ, "AFTERSALES_DATABASE_URL":
                     default_database_url(str(tmp_path / "var"))})
            assert made.returncode == 0, made.stderr
            as_bob = {"Authorization": f"Bearer {made.stdout.split()[-1]}"}
            for action, body in (
                ("confirm", {"note": "ok"}),
                ("analyze", {"root_cause": "customer_changed_mind",
                             "responsible_party": "customer", "note": "no reason return"}),
                ("resolve", {"resolution": {"type": "return_refund",
                                            "items": [{"sku": "SKU-KETTLE-4",
                                                       "quantity": 1}]}}),
            ):
                response = http.post(f"/api/v1/cases/{ret['id']}/{action}", json=body,
                                     headers=as_bob)
                assert response.status_code == 200, response.text
            deadline = time.monotonic() + 60
            while (http.get(f"/api/v1/cases/{ret['id']}").json()["resolution"]
                   or {}).get("awaiting") != "inspection":
                assert time.monotonic() < deadline, "the parcel never arrived"
                time.sleep(0.3)
            assert http.post(f"/api/v1/cases/{ret['id']}/inspect", json={"passed": True},
                             headers=as_bob).status_code == 200
            deadline = time.monotonic() + 30
            while http.get(f"/api/v1/cases/{ret['id']}").json()["stage"] != "feedback":
                assert time.monotonic() < deadline, "the refund did not finish"
                time.sleep(0.2)
            refunds = subprocess.run(
                [sys.executable, "-m", "aftersales.cli", "demo", "refunds", "--json"],
                capture_output=True, text=True, timeout=60,
                env={**os.environ, "AFTERSALES_ORDER_SYSTEM_URL": _order_url(dev)},
            )
            assert refunds.returncode == 0, refunds.stderr
            assert [r["amount"] for r in json.loads(refunds.stdout)
                    if r["case_id"] == ret["id"]] == ["149.00"]

            # Mail to the local receiver opens a case (channel email).
            where = next(line for line in dev.output if "mail in on " in line)
            host, _, mail_port = where.split("mail in on ", 1)[1].split()[0].rpartition(":")
            message = EmailMessage()
            message["From"], message["To"] = "walkin@customer.example", "service@shop.example"
            message["Subject"], message["Message-ID"] = "门店投诉", make_msgid()
            message.set_content("门店店员态度很差，希望改进。")
            with smtplib.SMTP(host, int(mail_port), timeout=30) as smtp:
                smtp.send_message(message)
            deadline = time.monotonic() + 30
            while not http.get("/api/v1/cases?channel=email").json()["items"]:
                assert time.monotonic() < deadline, "the mail opened no case"
                time.sleep(0.3)

            open_case = http.post("/api/v1/cases", json={
                "kind": "complaint", "channel": "phone", "order_id": "SO-10007",
                "customer": {"id": "C-1007", "name": "Lucas Martin"},
                "description": "Shoes are the wrong size.",
            }).json()

            # The bench command runs against this stack (figures are not judged here:
            # see docs/benchmarks.md).
            bench = subprocess.run(
                [sys.executable, "-m", "aftersales.cli", "bench", "--cases", "3",
                 "--concurrency", "2", "--url", base, "--json"],
                capture_output=True, text=True, timeout=120, env={
                    **os.environ,
                    "AFTERSALES_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'aftersales.db'}",
                    "AFTERSALES_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}"})
            assert bench.returncode == 0, bench.stderr[-2000:]
            result = json.loads(bench.stdout.strip().splitlines()[-1])
            assert result["completed"] == 3 and result["bare_completed"] == 3
            for key in ("cases_per_s", "action_p50_ms", "action_p95_ms", "bare_cases_per_s",
                        "bare_action_p95_ms", "ratio_to_bare_temporal"):
                assert result[key] > 0, key
            # Where the CPU went, per part of the system.
            assert {"worker", "temporal", "web", "bench", "total"} <= set(
                result["cpu_ms_per_lifecycle"])
            assert {"temporal", "bench"} <= set(result["bare_cpu_ms_per_lifecycle"])
            # The bare baseline asks Temporal for what a case lifecycle asks for.
            for key in ("updates", "activities", "local_activities"):
                assert result["shape"][key] == result["bare_shape"][key], (
                    key, result["shape"], result["bare_shape"])

        children = dev.children()
        assert len(children) >= 6
        assert dev.stop() == 0
        time.sleep(0.5)
        assert [pid for pid in children if alive(pid)] == []

        dev = DevProcess(tmp_path / "var", port, temporal_port)
        info = dev.wait_ready()
        headers = {"Authorization": f"Bearer {info['token']}"}
        with httpx.Client(base_url=info["url"], headers=headers, timeout=60) as http:
            again = http.get(f"/api/v1/cases/{case_id}").json()
            assert again["stage"] == "closed"
            assert again["timeline"] == timeline_before
            # The open case is still a live workflow after the restart.
            response = http.post(f"/api/v1/cases/{open_case['id']}/confirm",
                                 json={"note": "after restart"})
            assert response.status_code == 200, response.text
            assert response.json()["stage"] == "analyze"
    finally:
        if dev.proc.poll() is None:
            dev.stop()


def _order_url(dev: DevProcess) -> str:
    # The simulator listens on 5101 unless that was taken; find it among the children.
    for pid in dev.children():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"simulators.order_system" in cmdline:
            return f"http://127.0.0.1:{cmdline[cmdline.index(b'--port') + 1].decode()}"
    raise AssertionError("order-system simulator not running")
