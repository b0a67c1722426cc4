"""A local Kubernetes control plane for tests and the demo, from the binaries in ``<repo>/bin``.

``tests/controlplane/build.sh`` (``make controlplane``) builds them from Go modules. This module
starts them on free loopback ports, much like controller-runtime's envtest does, and goes on where
envtest stops: real controllers and simulated nodes, so that workloads behave as in a cluster.

* a throw-away CA, a serving certificate for the API server and an admin client certificate
  (``CN=fortress-admin``, ``O=system:masters``), plus an RSA key pair for signing service-account
  tokens, all made with ``cryptography``;
* etcd with its data in ``workdir`` (``--unsafe-no-fsync``: test data only);
* kube-apiserver with RBAC authorization and envtest's default flags;
* then, unless ``controllers=False``: kube-controller-manager (every default controller:
  Deployment, ReplicaSet, EndpointSlice, garbage collector, namespace, ServiceAccount, node
  lifecycle, Job, ...), kube-scheduler, and kwok, which plays the kubelet of ``nodes`` fake Nodes
  (annotation ``kwok.x-k8s.io/node: fake``, a ``spec.podCIDR`` each, no taint): a scheduled Pod
  becomes Running and Ready with a pod IP from its node's CIDR, a deleted one goes away. kwok's
  behaviour is the stages of ``tests/controlplane/kwok/stages``: kwok's own default set plus
  Fortress's failure stages (label ``fortress.test/pod-never-ready: "true"``: Running but never
  Ready; ``fortress.test/pod-crash: "true"``: CrashLoopBackOff, never Ready).
  :meth:`ControlPlane.start` returns once every node is Ready and schedulable and the ``default``
  ServiceAccount exists.

With ``controllers=False`` only etcd and the API server run (the ServiceAccount admission plugin is
then off, as in envtest, since nothing creates ServiceAccounts): Deployments never get Pods, garbage
collection and namespace finalization do not happen (a deleted namespace stays ``Terminating``).

Everything here is synchronous (``subprocess`` and ``urllib``), for use in ordinary pytest
fixtures::

    with ControlPlane(tmp_path, crd_dir=REPO / "crds") as cp:
        status, body = cp.request("GET", "/api/v1/namespaces")

Every log (``etcd.log``, ``kube-apiserver.log``, ``kube-controller-manager.log``,
``kube-scheduler.log``, ``kwok.log``) stays in ``workdir``; :meth:`ControlPlane.log_tails` quotes
them. Nothing is written outside ``workdir``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fortress.paths import repo_root

BIN_DIR: Path = Path(os.environ.get("FORTRESS_CONTROLPLANE_BIN", repo_root() / "bin"))
#: kwok's stages: its default set (vendored) and Fortress's failure stages, every ``*.yaml``.
KWOK_STAGES_DIR: Path = repo_root() / "tests" / "controlplane" / "kwok" / "stages"

ETCD = "etcd"
KUBE_APISERVER = "kube-apiserver"
KUBE_CONTROLLER_MANAGER = "kube-controller-manager"
KUBE_SCHEDULER = "kube-scheduler"
KWOK = "kwok"
#: What ``ControlPlane(controllers=False)`` runs, and what the full control plane adds.
API_SERVER_BINARIES = (ETCD, KUBE_APISERVER)
CONTROLLER_BINARIES = (KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KWOK)

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"
ADMIN_USER = "fortress-admin"
ADMIN_GROUP = "system:masters"

#: Pod IPs: fake node ``i`` (from 0) owns ``10.244.<i+1>.0/24``; kwok's fallback range is ``.0``.
CLUSTER_CIDR = "10.244.0.0/16"
KWOK_FALLBACK_POD_CIDR = "10.244.0.0/24"
#: Fake node ``i`` has InternalIP ``10.240.0.<i+1>``; kwok's fallback node IP is ``.254``.
NODE_IP_RANGE = "10.240.0.0/24"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
FAKE_NODE_VALUE = "fake"
FAKE_NODE_PREFIX = "kwok-node-"
NODE_LEASE_SECONDS = 40
#: Pod labels (value ``"true"``) that Fortress's kwok stages act on.
POD_NEVER_READY_LABEL = "fortress.test/pod-never-ready"
POD_CRASH_LABEL = "fortress.test/pod-crash"

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

_STOP_GRACE_SECONDS = 15.0
_PORT_RETRIES = 3


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or did not behave as expected."""


def missing_binaries(bin_dir: Path = BIN_DIR, *, controllers: bool = True) -> list[str]:
    """The binaries absent from ``bin_dir`` for a control plane with (or without) controllers."""
    names = API_SERVER_BINARIES + (CONTROLLER_BINARIES if controllers else ())
    return [name for name in names if not os.access(bin_dir / name, os.X_OK)]


def binaries_present(bin_dir: Path = BIN_DIR, *, controllers: bool = False) -> bool:
    """True when ``etcd`` and ``kube-apiserver`` are built (with ``controllers=True``: all five).

    ``binaries_present()`` answers "can the API server run alone?",
    ``binaries_present(controllers=True)`` "can the full control plane run?".
    """
    return not missing_binaries(bin_dir, controllers=controllers)


def fake_node(index: int) -> dict[str, Any]:
    """Fake Node number ``index`` (from 0), as kwok documents them, but schedulable by any Pod.

    kwok's documentation adds a ``kwok.x-k8s.io/node=fake:NoSchedule`` taint so that real Pods of a
    real cluster never land there; here every node is fake, so plain Deployments schedule without a
    toleration.
    """
    name = f"{FAKE_NODE_PREFIX}{index}"
    pod_cidr = str(list(ipaddress.IPv4Network(CLUSTER_CIDR).subnets(new_prefix=24))[index + 1])
    node_ip = str(ipaddress.IPv4Network(NODE_IP_RANGE)[index + 1])
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", FAKE_NODE_ANNOTATION: FAKE_NODE_VALUE},
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "allocatable": dict(resources),
            "capacity": dict(resources),
            "addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": name}],
            "phase": "Running",
        },
    }


# --------------------------------------------------------------------------- certificates


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usages: list[x509.ObjectIdentifier] | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    start = _now() - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    key_usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    builder = builder.add_extension(key_usage, critical=True)
    if not ca:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


class _PKI:
    """The certificates and keys of one control plane, written to ``cert_dir``."""

    def __init__(self, cert_dir: Path) -> None:
        cert_dir.mkdir(parents=True, exist_ok=True)
        self.dir = cert_dir

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fortress-test-ca")])
        ca = _issue(ca_name, ca_key, ca_name, ca_key, ca=True)

        first_service_ip = ipaddress.IPv4Network(SERVICE_CLUSTER_IP_RANGE)[1]
        serving_key = ec.generate_private_key(ec.SECP256R1())
        serving = _issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, KUBE_APISERVER)]),
            serving_key,
            ca_name,
            ca_key,
            usages=[ExtendedKeyUsageOID.SERVER_AUTH],
            sans=[
                x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                x509.IPAddress(first_service_ip),
                x509.DNSName("localhost"),
                x509.DNSName("kubernetes"),
                x509.DNSName("kubernetes.default"),
                x509.DNSName("kubernetes.default.svc"),
                x509.DNSName("kubernetes.default.svc.cluster.local"),
            ],
        )

        admin_key = ec.generate_private_key(ec.SECP256R1())
        admin = _issue(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
                    x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
                ]
            ),
            admin_key,
            ca_name,
            ca_key,
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        )

        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_pub = sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

        self.ca_pem = _pem_cert(ca)
        self.admin_cert_pem = _pem_cert(admin)
        self.admin_key_pem = _pem_key(admin_key)
        self.ca_file = _write(cert_dir / "ca.crt", self.ca_pem, 0o644)
        self.serving_cert_file = _write(cert_dir / "apiserver.crt", _pem_cert(serving), 0o644)
        self.serving_key_file = _write(cert_dir / "apiserver.key", _pem_key(serving_key))
        self.admin_cert_file = _write(cert_dir / "admin.crt", self.admin_cert_pem, 0o644)
        self.admin_key_file = _write(cert_dir / "admin.key", self.admin_key_pem)
        self.sa_key_file = _write(cert_dir / "sa-signer.key", _pem_key(sa_key))
        self.sa_pub_file = _write(cert_dir / "sa-signer.pub", sa_pub, 0o644)


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except FileNotFoundError:
        return "(no log)"
    text = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:]) if text else "(empty log)"


def _deathsig() -> None:  # pragma: no cover - runs in the child
    # Linux: SIGKILL the child when the thread that started it dies, so that a
    # crashed test run does not leave servers behind. Best effort.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class _Process:
    def __init__(
        self, name: str, argv: list[str], log_path: Path, cwd: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self._log.write(f"+ {' '.join(argv)}\n".encode())
        self._log.flush()
        in_main_thread = threading.current_thread() is threading.main_thread()
        try:
            self.popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_deathsig if in_main_thread else None,
            )
        except BaseException:
            self._log.close()
            raise
        self.started = time.monotonic()

    def running(self) -> bool:
        return self.popen.poll() is None

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)  # its own session: take any children too
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(sig)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM) without waiting; :meth:`stop` then waits."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)

    def stop(self, grace: float = _STOP_GRACE_SECONDS) -> None:
        try:
            if self.popen.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.popen.wait(grace)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.popen.wait(10)
            else:
                # Reap a process that already exited; kill what may be left of its group.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
        finally:
            self._log.close()


def _stop_together(procs: list[_Process], grace: float = _STOP_GRACE_SECONDS) -> list[BaseException]:
    """SIGTERM all of ``procs`` at once, then wait for (or kill) each; the errors met, if any."""
    errors: list[BaseException] = []
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in procs:
        try:
            proc.stop(grace)
        except BaseException as exc:  # keep going: never leave another one behind
            errors.append(exc)
    return errors


_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


def _healthy(url: str) -> bool:
    """``url`` answers 200 (components serve self-signed certificates: not verified)."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=_INSECURE) as resp:
            return int(resp.status) == 200
    except (OSError, ssl.SSLError, ValueError):
        return False


@dataclass
class _Component:
    """A controller process listening on a free port, started again on another if that one was taken."""

    name: str
    argv: Callable[[int], list[str]]  # port -> command line
    health_url: Callable[[int], str]  # port -> a URL that answers 200 once it is up
    env: Mapping[str, str] | None = None
    port: int = 0
    proc: _Process | None = None
    attempts: int = 0

    def launch(self, log_path: Path, cwd: Path) -> None:
        self.port = _free_port()
        self.attempts += 1
        self.proc = _Process(self.name, self.argv(self.port), log_path, cwd, self.env)


_LIVE: weakref.WeakSet[ControlPlane] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for cp in list(_LIVE):
        with contextlib.suppress(Exception):
            cp.stop()


# --------------------------------------------------------------------------- control plane


class ControlPlane:
    """etcd, kube-apiserver and (unless ``controllers=False``) controllers and fake nodes on loopback.

    ``nodes``: how many fake Nodes kwok plays (``controllers`` only). ``crd_dir``: CRDs
    (``*.yaml``) installed right after the API server is ready, before the controllers start, so
    that the garbage collector watches their kinds from the start (it rediscovers API resources only
    every 30 s). With an admin kubeconfig. A context manager.
    """

    def __init__(
        self,
        workdir: Path,
        bin_dir: Path = BIN_DIR,
        *,
        controllers: bool = True,
        nodes: int = 3,
        crd_dir: Path | None = None,
        stages_dir: Path = KWOK_STAGES_DIR,
        apiserver_flags: Sequence[str] = (),
    ) -> None:
        if controllers and not 1 <= nodes <= 250:
            raise ValueError(f"a control plane with controllers runs 1 to 250 fake nodes, not {nodes}")
        self.workdir = Path(workdir).resolve()
        self.bin_dir = Path(bin_dir)
        self.controllers = controllers
        self.nodes = nodes if controllers else 0
        self.crd_dir = crd_dir
        self.stages_dir = Path(stages_dir)
        #: Extra kube-apiserver flags (e.g. an audit log for a benchmark).
        self.apiserver_flags = list(apiserver_flags)
        self.cert_dir = self.workdir / "pki"
        self.etcd_data_dir = self.workdir / "etcd-data"
        self.etcd_log = self.workdir / "etcd.log"
        self.apiserver_log = self.workdir / "kube-apiserver.log"
        self.kubeconfig: Path = self.workdir / "kubeconfig"
        self.server: str = ""
        self.etcd_url: str = ""
        #: Seconds from launching etcd to the API server's /readyz answering ok (set by start()).
        self.start_seconds: float | None = None
        #: Seconds from the call of start() to each milestone: ``pki``, ``etcd``, ``kube-apiserver``
        #: (/readyz ok), ``default-namespace``, ``crds``; with controllers ``kube-controller-manager``,
        #: ``kube-scheduler``, ``kwok`` (each /healthz ok), ``nodes-ready`` (every fake node Ready and
        #: untainted), ``default-serviceaccount``; and ``total``.
        self.timings: dict[str, float] = {}
        self._pki: _PKI | None = None
        self._ssl: ssl.SSLContext | None = None
        self._etcd: _Process | None = None
        self._apiserver: _Process | None = None
        self._components: list[_Component] = []
        self._lock = threading.Lock()

    @property
    def node_names(self) -> list[str]:
        """The fake Nodes' names (none without controllers)."""
        return [f"{FAKE_NODE_PREFIX}{i}" for i in range(self.nodes)]

    def log_paths(self) -> dict[str, Path]:
        """Each component's log file, API server first."""
        names = [KUBE_APISERVER, ETCD] + (list(CONTROLLER_BINARIES) if self.controllers else [])
        return {name: self.workdir / f"{name}.log" for name in names}

    def pids(self) -> dict[str, int]:
        """The process id of each component started and not stopped yet."""
        procs = [self._etcd, self._apiserver, *(c.proc for c in self._components)]
        return {p.name: p.popen.pid for p in procs if p is not None}

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        """Start everything and wait until it is usable (see the module docstring); stop all on failure."""
        if self._apiserver is not None:
            raise ControlPlaneError("control plane already started")
        missing = missing_binaries(self.bin_dir, controllers=self.controllers)
        if missing:
            raise ControlPlaneError(
                f"control plane binaries missing in {self.bin_dir}: {', '.join(missing)} "
                "(build them with `make controlplane`, i.e. tests/controlplane/build.sh)"
            )
        stages = sorted(self.stages_dir.glob("*.yaml")) if self.controllers else []
        if self.controllers and not stages:
            raise ControlPlaneError(f"no kwok stages (*.yaml) in {self.stages_dir}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        _LIVE.add(self)
        begun = time.monotonic()
        deadline = begun + timeout

        def mark(milestone: str) -> None:
            self.timings[milestone] = time.monotonic() - begun

        try:
            self._pki = _PKI(self.cert_dir)
            self._ssl = self._make_ssl_context()
            mark("pki")
            t0 = time.monotonic()
            for attempt in range(1, _PORT_RETRIES + 1):
                if self._start_etcd(deadline, last_attempt=attempt == _PORT_RETRIES):
                    break
            mark("etcd")
            for attempt in range(1, _PORT_RETRIES + 1):
                if self._start_apiserver(deadline, last_attempt=attempt == _PORT_RETRIES):
                    break
            self.start_seconds = time.monotonic() - t0
            mark("kube-apiserver")
            self._wait_for_namespace("default", deadline)
            mark("default-namespace")
            if self.crd_dir is not None:
                self.install_crds(self.crd_dir, timeout=max(1.0, deadline - time.monotonic()))
                mark("crds")
            if self.controllers:
                self._start_controllers(stages, deadline, mark)
            mark("total")
        except BaseException as exc:
            tails = self.log_tails()
            self.stop()
            if isinstance(exc, ControlPlaneError):
                raise ControlPlaneError(f"{exc}\n{tails}") from None
            if isinstance(exc, Exception):
                raise ControlPlaneError(f"control plane failed to start: {exc!r}\n{tails}") from exc
            raise

    def stop(self) -> None:
        """Terminate the controllers, then kube-apiserver, then etcd (SIGTERM, then SIGKILL). Idempotent."""
        with self._lock:
            controllers = [c.proc for c in self._components if c.proc is not None]
            for component in self._components:
                component.proc = None
            core = [[p] for p in (self._apiserver, self._etcd) if p is not None]
            self._apiserver = self._etcd = None
        errors: list[BaseException] = []
        for group in [controllers, *core]:
            errors += _stop_together(group)
        _LIVE.discard(self)
        if errors:
            raise errors[0]

    def log_tails(self, lines: int = 40) -> str:
        """The last ``lines`` lines of every log, labelled, for error messages."""
        parts = []
        for label, path in self.log_paths().items():
            parts.append(f"----- {label} ({path}), last {lines} lines -----\n{_tail(path, lines)}")
        return "\n".join(parts)

    # ----------------------------------------------------------------- processes

    def _start_etcd(self, deadline: float, *, last_attempt: bool) -> bool:
        client_port, peer_port = _free_port(), _free_port()
        client = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        name = "fortress-test"
        argv = [
            str(self.bin_dir / ETCD),
            f"--name={name}",
            f"--data-dir={self.etcd_data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={name}={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
        self._etcd = _Process(ETCD, argv, self.etcd_log, self.workdir)
        self.etcd_url = client
        while time.monotonic() < deadline:
            if not self._etcd.running():
                if not last_attempt and "address already in use" in _tail(self.etcd_log, 20):
                    self._etcd.stop()
                    self._etcd = None
                    shutil.rmtree(self.etcd_data_dir, ignore_errors=True)
                    return False
                raise ControlPlaneError(f"etcd exited with code {self._etcd.popen.returncode}")
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=2) as resp:
                    if json.loads(resp.read()).get("health") == "true":
                        return True
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        raise ControlPlaneError(f"etcd did not become healthy at {client}/health in time")

    def _start_apiserver(self, deadline: float, *, last_attempt: bool) -> bool:
        assert self._pki is not None
        port = _free_port()
        self.server = f"https://127.0.0.1:{port}"
        pki = self._pki
        argv = [
            str(self.bin_dir / KUBE_APISERVER),
            f"--etcd-servers={self.etcd_url}",
            f"--cert-dir={self.cert_dir}",
            f"--tls-cert-file={pki.serving_cert_file}",
            f"--tls-private-key-file={pki.serving_key_file}",
            f"--client-ca-file={pki.ca_file}",
            f"--secure-port={port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # Loopback may not be published in the "kubernetes" Endpoints; like
            # k8s.io/kubernetes' own test server, keep no endpoints for it.
            "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.sa_pub_file}",
            f"--service-account-signing-key-file={pki.sa_key_file}",
            "--allow-privileged=true",
            *self.apiserver_flags,
        ]
        if not self.controllers:
            # No controller-manager creates the "default" ServiceAccount, which the
            # ServiceAccount admission plugin requires of every Pod (envtest does the same).
            argv.append("--disable-admission-plugins=ServiceAccount")
        self._apiserver = _Process(KUBE_APISERVER, argv, self.apiserver_log, self.workdir)
        self._write_kubeconfig()
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self._apiserver.running():
                if not last_attempt and "address already in use" in _tail(self.apiserver_log, 40):
                    self._apiserver.stop()
                    self._apiserver = None
                    return False
                raise ControlPlaneError(f"kube-apiserver exited with code {self._apiserver.popen.returncode}")
            try:
                status, body = self.request("GET", "/readyz", timeout=5, raw=True)
                if status == 200:
                    return True
                last = f"HTTP {status}: {body!r:.2000}"
            except (OSError, ssl.SSLError) as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise ControlPlaneError(f"kube-apiserver /readyz not ok at {self.server} in time; last: {last}")

    def _controller_components(self, stages: list[Path]) -> list[_Component]:
        assert self._pki is not None
        pki, kubeconfig = self._pki, str(self.kubeconfig)
        clients = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        cm_dir = self.workdir / KUBE_CONTROLLER_MANAGER
        scheduler_dir = self.workdir / KUBE_SCHEDULER
        kwok_dir = self.workdir / KWOK
        for path in (cm_dir, scheduler_dir, kwok_dir):
            path.mkdir(parents=True, exist_ok=True)

        def controller_manager(port: int) -> list[str]:
            return [
                str(self.bin_dir / KUBE_CONTROLLER_MANAGER),
                *clients,
                f"--secure-port={port}",
                f"--cert-dir={cm_dir / 'certs'}",
                "--controllers=*",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={pki.sa_key_file}",
                f"--root-ca-file={pki.ca_file}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                f"--cluster-cidr={CLUSTER_CIDR}",
                "--allocate-node-cidrs=false",
                # Else it creates /usr/libexec/kubernetes/kubelet-plugins/volume/exec on the host.
                f"--flex-volume-plugin-dir={cm_dir / 'volume-plugins'}",
            ]

        def scheduler(port: int) -> list[str]:
            return [
                str(self.bin_dir / KUBE_SCHEDULER),
                *clients,
                f"--secure-port={port}",
                f"--cert-dir={scheduler_dir / 'certs'}",
            ]

        def kwok(port: int) -> list[str]:
            return [
                str(self.bin_dir / KWOK),
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}={FAKE_NODE_VALUE}",
                f"--cidr={KWOK_FALLBACK_POD_CIDR}",
                f"--node-ip={ipaddress.IPv4Network(NODE_IP_RANGE)[254]}",
                f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
                f"--server-address=127.0.0.1:{port}",
                *(f"--config={path}" for path in stages),
            ]

        def https(port: int) -> str:
            return f"https://127.0.0.1:{port}/healthz"

        # kwok reads ~/.kwok/kwok.yaml as well unless KWOK_WORKDIR points elsewhere: keep it here.
        kwok_env = {**os.environ, "KWOK_WORKDIR": str(kwok_dir)}
        return [
            _Component(KUBE_CONTROLLER_MANAGER, controller_manager, https),
            _Component(KUBE_SCHEDULER, scheduler, https),
            _Component(KWOK, kwok, lambda port: f"http://127.0.0.1:{port}/healthz", env=kwok_env),
        ]

    def _start_controllers(self, stages: list[Path], deadline: float, mark: Callable[[str], None]) -> None:
        self._components = self._controller_components(stages)
        for component in self._components:
            component.launch(self.workdir / f"{component.name}.log", self.workdir)
        for index in range(self.nodes):
            node = fake_node(index)
            status, body = self.request("POST", "/api/v1/nodes", node)
            if status not in (201, 409):
                raise ControlPlaneError(
                    f"creating node {node['metadata']['name']}: HTTP {status}: {_message(body)}"
                )
        pending = list(self._components)
        while pending:
            for component in list(pending):
                assert component.proc is not None
                log_path = component.proc.log_path
                if not component.proc.running():
                    clash = "address already in use" in _tail(log_path, 40)
                    if clash and component.attempts < _PORT_RETRIES:
                        component.proc.stop()
                        component.launch(log_path, self.workdir)
                        continue
                    raise ControlPlaneError(
                        f"{component.name} exited with code {component.proc.popen.returncode}"
                    )
                if _healthy(component.health_url(component.port)):
                    pending.remove(component)
                    mark(component.name)
            if pending and time.monotonic() >= deadline:
                names = ", ".join(c.name for c in pending)
                raise ControlPlaneError(f"not healthy in time: {names}")
            if pending:
                time.sleep(0.1)
        self._wait_for_nodes(deadline)
        mark("nodes-ready")
        self._wait_for(
            "ServiceAccount default/default", "/api/v1/namespaces/default/serviceaccounts/default", deadline
        )
        mark("default-serviceaccount")

    def _wait_for_nodes(self, deadline: float) -> None:
        # Ready (kwok's node-initialize stage) and without the node.kubernetes.io/not-ready taint,
        # which admission put on each new node and the node lifecycle controller lifts once it is Ready.
        wanted = set(self.node_names)
        state = "not listed yet"
        while True:
            status, body = self.request("GET", "/api/v1/nodes")
            if status == 200:
                nodes = {n["metadata"]["name"]: n for n in body.get("items", [])}
                waiting = {name: _node_unready_reason(nodes.get(name)) for name in sorted(wanted)}
                waiting = {name: why for name, why in waiting.items() if why}
                if not waiting:
                    return
                state = "; ".join(f"{name}: {why}" for name, why in waiting.items())
            else:
                state = f"HTTP {status}: {_message(body)}"
            if time.monotonic() >= deadline:
                raise ControlPlaneError(f"fake nodes not ready in time ({state})")
            time.sleep(0.1)

    def _wait_for(self, what: str, path: str, deadline: float) -> None:
        while True:
            status, _ = self.request("GET", path)
            if status == 200:
                return
            if time.monotonic() >= deadline:
                raise ControlPlaneError(f"{what} did not appear (last HTTP {status})")
            time.sleep(0.1)

    def _wait_for_namespace(self, name: str, deadline: float) -> None:
        # The API server's system-namespaces controller creates default/kube-system/...
        # shortly after it serves; wait so tests can rely on "default".
        self._wait_for(f"namespace {name!r}", f"/api/v1/namespaces/{name}", deadline)

    def _write_kubeconfig(self) -> None:
        assert self._pki is not None

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fortress-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self._pki.ca_pem),
                    },
                }
            ],
            "users": [
                {
                    "name": ADMIN_USER,
                    "user": {
                        "client-certificate-data": b64(self._pki.admin_cert_pem),
                        "client-key-data": b64(self._pki.admin_key_pem),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "fortress-test",
                    "context": {"cluster": "fortress-test", "user": ADMIN_USER, "namespace": "default"},
                }
            ],
            "current-context": "fortress-test",
        }
        _write(self.kubeconfig, yaml.safe_dump(config, sort_keys=False).encode())

    # ----------------------------------------------------------------- HTTP

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"

    @property
    def client_cert_file(self) -> Path:
        return self.cert_dir / "admin.crt"

    @property
    def client_key_file(self) -> Path:
        return self.cert_dir / "admin.key"

    def _make_ssl_context(self) -> ssl.SSLContext:
        assert self._pki is not None
        ctx = ssl.create_default_context(cafile=str(self._pki.ca_file))
        ctx.load_cert_chain(str(self._pki.admin_cert_file), str(self._pki.admin_key_file))
        return ctx

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts the test CA and presents the admin client certificate."""
        if self._ssl is None:
            raise ControlPlaneError("control plane not started")
        return self._ssl

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float = 30.0,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> tuple[int, Any]:
        """One HTTP call as the admin user. Returns ``(status, decoded JSON or text)``.

        HTTP error statuses are returned, not raised; connection errors raise ``OSError``.
        """
        if not self.server:
            raise ControlPlaneError("control plane not started")
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context()) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, payload = err.code, err.read()
        text = payload.decode("utf-8", errors="replace")
        if raw:
            return status, text
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    # ----------------------------------------------------------------- CRDs

    def install_crds(self, crd_dir: Path, timeout: float = 60.0) -> None:
        """Create or replace every CustomResourceDefinition in ``crd_dir/*.yaml``.

        Then wait until each has condition ``Established=True`` and its resources
        are listed by API discovery (so custom resources can be created at once).
        """
        deadline = time.monotonic() + timeout
        crds = list(_load_crds(Path(crd_dir)))
        if not crds:
            raise ControlPlaneError(f"no CustomResourceDefinition found in {crd_dir}/*.yaml")
        for crd in crds:
            self._apply_crd(crd)
        for crd in crds:
            self._wait_established(crd, deadline)

    def _apply_crd(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        status, body = self.request("POST", CRD_PATH, crd)
        if status == 409:
            for _ in range(5):  # retry on conflicting updates
                status, current = self.request("GET", f"{CRD_PATH}/{name}")
                if status != 200:
                    break
                replacement = json.loads(json.dumps(crd))
                replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                status, body = self.request("PUT", f"{CRD_PATH}/{name}", replacement)
                if status != 409:
                    break
        if status not in (200, 201):
            raise ControlPlaneError(f"applying CRD {name} failed: HTTP {status}: {_message(body)}")

    def _wait_established(self, crd: dict[str, Any], deadline: float) -> None:
        name = crd["metadata"]["name"]
        spec = crd.get("spec", {})
        plural = spec.get("names", {}).get("plural")
        group = spec.get("group")
        versions = [v["name"] for v in spec.get("versions", []) if v.get("served", True)]
        state = "not yet read"
        while True:
            status, body = self.request("GET", f"{CRD_PATH}/{name}")
            if status == 200:
                conds = {c.get("type"): c for c in (body.get("status") or {}).get("conditions") or []}
                names_ok = conds.get("NamesAccepted", {})
                if names_ok.get("status") == "False":
                    raise ControlPlaneError(f"CRD {name}: names not accepted: {names_ok.get('message')}")
                est = conds.get("Established", {})
                state = f"Established={est.get('status', 'missing')} {est.get('message', '')}".strip()
                if est.get("status") == "True" and all(self._discovered(group, v, plural) for v in versions):
                    return
            else:
                state = f"HTTP {status}: {_message(body)}"
            if time.monotonic() >= deadline:
                raise ControlPlaneError(f"CRD {name} not established in time ({state})")
            time.sleep(0.1)

    def _discovered(self, group: str | None, version: str, plural: str | None) -> bool:
        if not group or not plural:
            return True
        status, body = self.request("GET", f"/apis/{group}/{version}")
        return status == 200 and any(r.get("name") == plural for r in body.get("resources", []))


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body)
    return str(body)[:2000]


def _load_crds(crd_dir: Path) -> Iterator[dict[str, Any]]:
    files = sorted(crd_dir.glob("*.yaml"))
    for path in files:
        with path.open() as f:
            for doc in yaml.safe_load_all(f):
                if not doc:
                    continue
                if doc.get("kind") == "CustomResourceDefinition":
                    doc.setdefault("apiVersion", "apiextensions.k8s.io/v1")
                    yield doc
                elif doc.get("kind") == "List":
                    for item in doc.get("items", []):
                        if item.get("kind") == "CustomResourceDefinition":
                            yield item
                else:
                    raise ControlPlaneError(
                        f"{path}: expected a CustomResourceDefinition, got kind {doc.get('kind')!r}"
                    )


def _node_unready_reason(node: dict[str, Any] | None) -> str:
    """Why a fake node cannot take Pods yet ("" when it can)."""
    if node is None:
        return "absent"
    conditions = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    if conditions.get("Ready") != "True":
        return f"Ready={conditions.get('Ready', 'missing')}"
    spec = node.get("spec") or {}
    taints = [
        t.get("key", "") for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")
    ]
    if taints:
        return f"tainted {', '.join(taints)}"
    return "unschedulable" if spec.get("unschedulable") else ""
