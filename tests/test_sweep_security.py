"""`fastnn sweep` opens no door to other users (issue 20): the local cluster listens on 127.0.0.1 over TLS with
throw-away credentials and refuses whoever lacks them (a second client, a raw connection to any of its ports), it
runs no HTTP server, and without cryptography a local sweep stops with one line instead of running open.  With
--scheduler, the client uses Dask's own TLS configuration, and a plain tcp:// address of another machine is
warned about.

One local cluster of one worker serves the module; nothing leaves the loopback interface.  The tests skip
without dask, and those that start a cluster without cryptography (``pip install 'fastnn[dask]'``).
"""

import asyncio
import gc
import operator
import os
import socket
import ssl
import sys
import warnings
from pathlib import Path

import pytest

import _sweep_tasks
from fastnn import sweep as sweeps
from fastnn.sweep import cluster as sweep_cluster

distributed = pytest.importorskip("distributed", reason="dask is not installed: pip install 'fastnn[dask]'")


def _cryptography():
    pytest.importorskip("cryptography", reason="cryptography is not installed: pip install 'fastnn[dask]'")


def _listening_ports(pid) -> set:
    """The TCP ports on which process ``pid`` listens: its sockets' inodes looked up in /proc/net/tcp{,6}."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports


@pytest.fixture(scope="module")
def local():
    """A sweep's local cluster (``fastnn.sweep.cluster.Cluster``) of one worker, and this process's listening ports
    from before it started."""
    _cryptography()
    before = _listening_ports(os.getpid()) if Path("/proc/self/net/tcp").exists() else None
    cluster = sweep_cluster.Cluster(None, 1, 1, 1, 10)
    try:
        yield cluster, before
    finally:
        cluster.close()


def _addresses(cluster) -> dict:
    """Every address the cluster listens on: the scheduler's, each worker's and each worker's nanny's."""
    workers = cluster.client.scheduler_info()["workers"]
    return {"scheduler": cluster.cluster.scheduler_address, **{f"worker {a}": a for a in workers},
            **{f"nanny of {a}": w["nanny"] for a, w in workers.items()}}


def _port(address) -> int:
    return int(address.rpartition(":")[2])


def _client_connects(address, **kwargs) -> bool:
    """Whether a ``distributed.Client`` connects to the scheduler at ``address`` (closed again if it does)."""
    try:
        client = distributed.Client(address, timeout=2, set_as_default=False, **kwargs)
    except (OSError, TypeError, ValueError):  # refused, timed out, or no TLS context to offer
        _collect_failed_clients()
        return False
    client.close()
    return True


def _collect_failed_clients():
    """Close the Clients that failed to connect now: left to the garbage collector, one's ``__del__`` can run
    while the next Client starts its event loop, and both wait on Dask's loop lock for ever."""
    gc.collect()


async def _answered(address, connection_args) -> bool:
    """Whether a Dask node at ``address`` answers ``identity`` on a connection made with ``connection_args``."""
    try:
        comm = await distributed.comm.connect(address, timeout=2, **connection_args)
    except (OSError, TypeError):  # refused, closed in the handshake, timed out (all OSError), no TLS context
        return False
    try:
        await comm.write({"op": "identity", "reply": True})
        return isinstance(await comm.read(), dict)
    except OSError:  # CommClosedError
        return False
    finally:
        comm.abort()


def _ended_without_a_certificate(port) -> bool:
    """Whether the server at ``port`` ends a TLS connection that offers no client certificate (an alert, a
    reset or a close), rather than serving it or waiting on it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # whatever the server's certificate: the server must refuse us
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"\0" * 8)
                return tls.recv(1) == b""
    except (ssl.SSLError, ConnectionError):
        return True
    except OSError:  # timed out: the connection was kept open
        return False


def _answers_http(port) -> bool:
    """Whether an HTTP request to 127.0.0.1:``port`` gets an HTTP reply."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET /json/identity.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def test_the_sweep_s_own_client_works_over_tls_on_the_loopback(local):
    cluster, _ = local
    for name, address in _addresses(cluster).items():
        assert address.startswith("tls://127.0.0.1:"), (name, address)
    assert cluster.client.submit(operator.add, 1, 2).result() == 3


def test_a_second_client_without_the_credentials_is_refused(local):
    cluster, _ = local
    address = cluster.cluster.scheduler_address
    tcp = "tcp://" + address.partition("://")[2]
    assert not _client_connects(address), f"a client without credentials connected to {address}"
    assert not _client_connects(tcp), f"a client connected to {tcp}"
    intruder = distributed.Security.temporary()  # anyone can make credentials: only the sweep's are accepted
    assert not _client_connects(address, security=intruder), "a client with its own certificate connected"
    assert cluster.client.submit(operator.add, 2, 2).result() == 4  # the sweep's own client goes on


def test_no_port_of_the_cluster_serves_a_connection_without_the_credentials(local):
    cluster, _ = local
    intruder = distributed.Security.temporary().get_connection_args("client")
    for name, address in _addresses(cluster).items():
        tcp = "tcp://" + address.partition("://")[2]
        assert not asyncio.run(_answered(tcp, {})), f"the {name} answered over {tcp}"
        assert not asyncio.run(_answered(address, intruder)), f"the {name} answered another certificate"
        assert _ended_without_a_certificate(_port(address)), f"the {name} kept a connection without a certificate"


def test_no_http_server_listens_anywhere(local):
    cluster, before = local
    if before is None:
        pytest.skip("needs Linux's /proc/net/tcp")
    assert getattr(cluster.cluster.scheduler, "http_server", None) is None
    assert set(cluster.client.run(lambda dask_worker: getattr(dask_worker, "http_server", None) is None).values()) \
        == {True}
    # every port a process of the cluster listens on: this one's (the scheduler, the nannies) and the workers'
    pids = [os.getpid(), *cluster.client.run(os.getpid).values()]
    listening = set()
    for pid in pids:
        listening |= _listening_ports(pid)
    listening -= before
    comm_ports = {_port(a) for a in _addresses(cluster).values()}
    assert listening == comm_ports, f"listening on {sorted(listening - comm_ports)} too"
    answering = [port for port in listening if _answers_http(port)]
    assert not answering, f"HTTP answers on {answering}"


def test_with_scheduler_the_client_uses_dask_s_tls_configuration(local, tmp_path):
    """--scheduler of a secured cluster: the sweep runs with the credentials of Dask's configuration, and
    without them it cannot connect."""
    dask = pytest.importorskip("dask")
    cluster, _ = local
    address = cluster.cluster.scheduler_address
    with pytest.raises(OSError, match=f"--scheduler {address}: cannot connect"):
        sweep_cluster.Cluster(address, None, 1, 1, 2)
    _collect_failed_clients()
    own = cluster.cluster.security
    config = {"distributed.comm.tls.ca-file": own.tls_ca_file, "distributed.comm.tls.client.cert": own.tls_client_cert,
              "distributed.comm.tls.client.key": own.tls_client_key, "distributed.comm.require-encryption": True}
    with dask.config.set(config), warnings.catch_warnings():
        warnings.simplefilter("error")  # a tls:// address on the loopback: no warning
        res = sweeps.run_sweep(_sweep_tasks.fake_train, {"lr": [0.01, 0.1]}, out=tmp_path / "s", scheduler=address,
                               progress=False)
    assert res["exit_status"] == 0 and res["ran"] == 2 and res["cluster"] == f"the Dask cluster at {address}"


@pytest.mark.parametrize("address, warns", [
    ("tcp://10.1.2.3:8786", True), ("10.1.2.3:8786", True), ("tcp://scheduler.example.org:8786", True),
    ("tcp://[2001:db8::1]:8786", True), ("ws://10.1.2.3:8786", True), ("tcp://10.1.2.3", True),
    ("tcp://127.0.0.1:8786", False), ("127.0.0.2:8786", False), ("tcp://localhost:8786", False),
    ("localhost:8786", False), ("tcp://[::1]:8786", False), ("tls://10.0.0.1:8786", False),
    ("wss://10.0.0.1:8786", False), ("not-an-address::", False)])
def test_which_scheduler_addresses_are_plain_and_remote(address, warns):
    assert sweep_cluster.plain_remote(address) is warns


def test_a_plain_remote_scheduler_is_warned_about_once_and_dask_s_security_is_kept(monkeypatch):
    calls = []

    class Client:  # connects nowhere
        def __init__(self, address, **kwargs):
            calls.append((address, kwargs))

        def close(self):
            pass

    monkeypatch.setattr(distributed, "Client", Client)
    with pytest.warns(RuntimeWarning, match=r"--scheduler tcp://10\.1\.2\.3:8786 is plain tcp:// to another machine"
                      r".*distributed\.comm\.tls") as record:
        sweep_cluster.Cluster("tcp://10.1.2.3:8786", None, 1, 1, 1).close()
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep_cluster.Cluster("tls://10.1.2.3:8786", None, 1, 1, 1).close()
    # the client's security is Dask's configuration (Client's default), not overridden
    assert [(a, "security" in kw) for a, kw in calls] == [("tcp://10.1.2.3:8786", False),
                                                          ("tls://10.1.2.3:8786", False)]


def test_without_cryptography_a_local_sweep_stops_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cryptography", None)  # `import cryptography` raises ImportError
    with pytest.raises(ImportError, match=r"cryptography.*pip install 'fastnn\[dask\]'") as info:
        sweeps.run_sweep(_sweep_tasks.fake_train, {"lr": [0.1]}, out=tmp_path, progress=False)
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "runs").glob("*.json"))
