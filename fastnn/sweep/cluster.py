"""The Dask cluster a sweep runs on, and its security.

:class:`Cluster` is a Dask client: on an existing cluster at ``scheduler``, or on a new local cluster of
worker processes, one thread each.  The local cluster listens on 127.0.0.1 only, over TLS with throw-away
credentials that only the sweep holds, and serves no HTTP (no dashboard): no other user of the machine can
connect to it.  A cluster at ``scheduler`` is its owner's to secure; the client uses Dask's security
configuration (``distributed.comm.tls.*``), and a plain ``tcp://`` address of another machine is warned about
(:func:`plain_remote`).

Dask, distributed and cryptography are an optional extra (:data:`DASK_EXTRA`), imported only when a sweep
starts: :func:`check_cluster_packages` before anything is written.
"""

from __future__ import annotations

import os

__all__ = ["DASK_EXTRA", "Cluster", "check_cluster_packages", "dask_distributed", "plain_remote", "use_threads"]

#: What to install when dask is missing.
DASK_EXTRA = "pip install 'fastnn[dask]' (dask, distributed and cryptography)"


def dask_distributed():
    """The ``distributed`` package, or an ImportError naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"fastnn sweep needs Dask: {DASK_EXTRA} ({exc})") from None
    return distributed


def use_threads(threads: int) -> None:
    """On a worker: the kernels of this run on ``threads`` threads (the process's OpenMP setting)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for what the run starts; the loaded runtime needs the call
    from ..functional import set_num_threads

    set_num_threads(threads)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def plain_remote(address: str) -> bool:
    """Whether the scheduler at ``address`` is reached unencrypted over the network: a ``tcp://`` or ``ws://``
    address (or one with no scheme, which Dask reads as ``tcp://``) of a host other than this machine's
    loopback (``localhost``, ``127.x.x.x``, ``::1``).  Host names are not resolved; an address Dask cannot
    parse is not judged (connecting to it fails)."""
    import ipaddress

    from distributed.comm import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address, strict=False)
        host, _ = parse_host_port(location, default_port=8786)
    except ValueError:
        return False
    if scheme not in ("tcp", "ws") or not host or host.lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return True


def _without_http(server_class):
    """``server_class`` (Dask's Scheduler or Worker) that starts no HTTP server.

    Dask starts one on every scheduler (port 8787, else another) and worker whether or not a dashboard is
    asked for, and it answers anyone (``/json/identity.json``, ``/info/...``); a sweep shows no dashboard.
    """
    def start_http_server(self, *args, **kwargs):
        self.http_server = None

    namespace = {"start_http_server": start_http_server, "__module__": __name__}
    return type(server_class.__name__, (server_class,), namespace)


def _scheduler_without_http(**options):
    """The local cluster's scheduler (SpecCluster's ``cls``): Dask's, without its HTTP server."""
    return _without_http(dask_distributed().Scheduler)(**options)


def _worker_without_http(**options):
    """In a worker process, the worker its Nanny starts (the Nanny's ``worker_class``): Dask's, without its
    HTTP server."""
    return _without_http(dask_distributed().Worker)(**options)


def _no_cryptography(exc: ImportError) -> ImportError:
    """The ImportError of a missing cryptography, naming the extra to install."""
    return ImportError(f"fastnn sweep needs cryptography for its local cluster's TLS: {DASK_EXTRA} ({exc})")


def _temporary_security(distributed):
    """Throw-away TLS credentials, in memory, for a local cluster and its client (``Security.temporary()``)."""
    try:
        return distributed.Security.temporary()
    except ImportError as exc:  # cryptography is missing: never fall back to an open cluster
        raise _no_cryptography(exc) from None


def check_cluster_packages(scheduler) -> None:
    """Import what the cluster needs (distributed; cryptography for a local cluster's TLS) before anything is
    written, so that a sweep refused for a missing package leaves no folder behind."""
    dask_distributed()
    if scheduler is None:
        try:
            import cryptography.x509  # noqa: F401  (what Security.temporary() uses)
        except ImportError as exc:
            raise _no_cryptography(exc) from None


class Cluster:
    """A Dask client: on ``scheduler`` when given, else on a new local cluster (closed at the end).

    The local cluster listens on 127.0.0.1 only, over TLS with throw-away credentials that only this client
    and the cluster's own processes hold (``require_encryption``: another local user can neither submit work
    nor talk to a worker), and it runs no HTTP server.  On ``scheduler``, the client uses Dask's own security
    configuration (``distributed.comm.tls.*``, or ``distributed.client.security-loader``), as ``Client``
    does by default; a plain ``tcp://`` address of another machine is warned about.
    """

    def __init__(self, scheduler, workers, runs, threads, connect_timeout):
        distributed = dask_distributed()
        self.cluster = None
        if scheduler is not None:
            if workers is not None:
                raise ValueError("--workers sets the local cluster's size; with --scheduler, the cluster's own "
                                 "workers run the sweep")
            if plain_remote(scheduler):
                import warnings

                warnings.warn(f"fastnn: --scheduler {scheduler} is plain tcp:// to another machine: the runs "
                              "and their results cross the network unencrypted, and whoever reaches that port can "
                              "run code on the cluster; give a tls:// address with Dask's TLS configuration "
                              "(distributed.comm.tls.*)", RuntimeWarning, stacklevel=3)
            try:
                self.client = distributed.Client(scheduler, timeout=connect_timeout, set_as_default=False)
            except (OSError, ValueError, TypeError) as exc:
                text = " ".join(str(exc).split()) or type(exc).__name__
                raise OSError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler there ({text})") from None
            self.description = f"the Dask cluster at {scheduler}"
        else:
            import logging

            n = workers or max(1, min(_cores(), runs))
            security = _temporary_security(distributed)
            node = {"host": "127.0.0.1", "protocol": "tls://", "security": security, "dashboard": False,
                    "dashboard_address": None}
            scheduler_spec = {"cls": _scheduler_without_http, "options": {**node, "port": 0}}
            # memory_limit: each worker a 1/n share of the memory, as LocalCluster gives
            worker_spec = {"cls": distributed.Nanny,
                           "options": {**node, "nthreads": 1, "worker_class": _worker_without_http,
                                       "memory_limit": 1 / n, "silence_logs": logging.ERROR,
                                       "env": {"OMP_NUM_THREADS": str(threads)}}}
            self.cluster = distributed.SpecCluster(
                scheduler=scheduler_spec, workers=dict.fromkeys(range(n), worker_spec), worker=worker_spec,
                security=security, silence_logs=logging.ERROR)
            self.client = distributed.Client(self.cluster, security=security, set_as_default=False)
            self.description = f"a local Dask cluster of {n} worker processes"

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


    def as_completed(self, futures):
        """The futures as they finish (``distributed.as_completed`` on this client's loop)."""
        return dask_distributed().as_completed(futures, loop=self.client.loop)
