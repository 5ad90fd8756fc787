"""Several "hosts" on this machine: network namespaces joined by veth links to one bridge.

    network = Network.create()          # a bridge on the host, 10.x.y.1/24 (raises Unsupported without root)
    web1 = network.add_host("web1")     # namespace + veth pair; 10.x.y.2 inside
    proc = web1.spawn([...], env, log)  # a process on that host (``ip netns exec``)
    network.cut(web1)                   # its link goes down: packets dropped both ways, no RST, like a pulled cable
    network.restore(web1)
    network.netem(web1, delay_ms=20, loss_percent=1)   # tc netem on its link
    network.destroy()

The test process stays in the host namespace and reaches every host through the bridge, so
services it runs itself (provider fakes, a TCP proxy to the host's PostgreSQL) are bound to the
bridge address ``network.gateway`` and reachable from every namespace, and cut with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from app.devredis import redis_server_binary

TC = shutil.which("tc") or "/usr/sbin/tc"


class Unsupported(Exception):
    """This machine cannot create network namespaces (not root, no ``ip``, a container without CAP_NET_ADMIN)."""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    veth: str  # the host-side end of its link, on the bridge
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(
        self, argv: list[str], env: dict[str, str], log: IO[bytes] | int, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, *argv], env=env, stdout=log, stderr=log, cwd=cwd
        )
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
        self.processes.clear()

    def start_redis(self, data_dir: Path, port: int = 6379) -> str:
        """A redis-server on this host; returns its URL."""
        data_dir.mkdir(parents=True, exist_ok=True)
        process = self.spawn(
            [
                redis_server_binary(),
                *("--bind", self.address, "--port", str(port), "--save", "", "--appendonly", "no"),
                *("--dir", str(data_dir), "--loglevel", "warning", "--protected-mode", "no"),
            ],
            env={},
            log=subprocess.DEVNULL,
        )
        url = f"redis://{self.address}:{port}/0"
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert process.poll() is None, f"redis-server on {self.name} exited"
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if client.ping():
                        return url
                time.sleep(0.05)
            raise TimeoutError(f"redis-server on {self.name} did not start")
        finally:
            client.close()


class Network:
    def __init__(self, tag: str, subnet: str) -> None:
        self.tag = tag
        self.subnet = subnet  # "10.x.y"
        self.bridge = f"oh{tag}br"
        self.gateway = f"{subnet}.1"
        self.hosts: list[Host] = []

    @classmethod
    def create(cls) -> Network:
        tag = secrets.token_hex(2)
        number = int(tag, 16)
        network = cls(tag, f"10.{200 + number % 50}.{number // 50 % 250}")
        try:
            _ip("link", "add", network.bridge, "type", "bridge")
        except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as exc:
            detail = exc.stderr.decode().strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
            raise Unsupported(f"cannot create a bridge or namespaces here: {detail}") from None
        try:
            _ip("addr", "add", f"{network.gateway}/24", "dev", network.bridge)
            _ip("link", "set", network.bridge, "up")
        except BaseException:
            network.destroy()
            raise
        return network

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 2
        host = Host(name, f"oh{self.tag}-{name}", f"{self.subnet}.{index}", f"oh{self.tag}v{index}")
        inner = f"oh{self.tag}n{index}"
        try:
            _ip("netns", "add", host.namespace)
        except subprocess.CalledProcessError as exc:
            raise Unsupported(f"ip netns add failed: {exc.stderr.decode().strip()}") from None
        self.hosts.append(host)
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", host.namespace)
        _ip("link", "set", host.veth, "master", self.bridge, "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inner)
        _ip("-n", host.namespace, "link", "set", inner, "up")
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        _ip("-n", host.namespace, "route", "add", "default", "via", self.gateway)
        return host

    def cut(self, host: Host) -> None:
        """The host's link goes down: nothing in or out, and nobody is told (no RST, no FIN)."""
        _ip("link", "set", host.veth, "down")

    def restore(self, host: Host) -> None:
        _ip("link", "set", host.veth, "up")

    def netem(self, host: Host, *, delay_ms: float = 0, loss_percent: float = 0) -> None:
        """Delay and loss on the host's link (packets towards it), with tc netem; Unsupported where the
        kernel has no netem qdisc (sch_netem not built or loaded)."""
        command = [TC, "qdisc", "replace", "dev", host.veth, "root", "netem"]
        command += ["delay", f"{delay_ms}ms", "loss", f"{loss_percent}%"]
        done = subprocess.run(command, capture_output=True, timeout=10)
        if done.returncode != 0:
            raise Unsupported(f"tc netem: {done.stderr.decode().strip()}")

    def destroy(self) -> None:
        for host in self.hosts:
            host.kill_all()
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("link", "del", host.veth)  # and its peer; not left to the namespace's end
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", host.namespace)
        self.hosts.clear()
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)


async def wait_for_port(address: str, port: int, within: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process for {address}:{port} exited with {process.returncode}")
        try:
            async with asyncio.timeout(0.5):
                _, writer = await asyncio.open_connection(address, port)
            writer.close()
            return
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing listens on {address}:{port} after {within} s")
