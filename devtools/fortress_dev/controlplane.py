"""A real Kubernetes control plane (etcd + kube-apiserver) for integration tests.

The binaries are built from Go modules by ``tests/controlplane/build.sh`` into
``<repo>/bin``. This module starts them on free loopback ports, much like
controller-runtime's envtest does:

* a throw-away CA, a serving certificate for the API server and an admin client
  certificate (``CN=fortress-admin``, ``O=system:masters``), plus an RSA key pair
  for signing service-account tokens, all made with ``cryptography``;
* etcd with its data in ``workdir`` (``--unsafe-no-fsync``: test data only);
* kube-apiserver with RBAC authorization and envtest's default flags.

There is no controller-manager and no scheduler: Deployments never get
ReplicaSets or Pods, no ServiceAccount token is minted for Pods, garbage
collection of dependents and namespace finalization do not happen (a deleted
namespace stays ``Terminating``). The API server itself creates the
``default``, ``kube-system``, ``kube-public`` and ``kube-node-lease``
namespaces; :meth:`ControlPlane.start` waits for ``default``.

Everything here is synchronous (``subprocess`` and ``urllib``), for use in
ordinary pytest fixtures::

    with ControlPlane(tmp_path) as cp:
        cp.install_crds(REPO / "crds")
        status, body = cp.request("GET", "/api/v1/namespaces")

Both logs (``etcd.log`` and ``kube-apiserver.log``) stay in ``workdir``.
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
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fortress.paths import repo_root

BIN_DIR: Path = Path(os.environ.get("FORTRESS_CONTROLPLANE_BIN", repo_root() / "bin"))

ETCD = "etcd"
KUBE_APISERVER = "kube-apiserver"

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"
ADMIN_USER = "fortress-admin"
ADMIN_GROUP = "system:masters"

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

_STOP_GRACE_SECONDS = 15.0
_PORT_RETRIES = 3


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or did not behave as expected."""


def binaries_present(bin_dir: Path = BIN_DIR) -> bool:
    """True when both ``etcd`` and ``kube-apiserver`` are built and executable."""
    return all(os.access(bin_dir / name, os.X_OK) for name in (ETCD, KUBE_APISERVER))


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
    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path) -> None:
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


_LIVE: weakref.WeakSet[ControlPlane] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for cp in list(_LIVE):
        with contextlib.suppress(Exception):
            cp.stop()


# --------------------------------------------------------------------------- control plane


class ControlPlane:
    """etcd + kube-apiserver on loopback, with an admin kubeconfig. A context manager."""

    def __init__(self, workdir: Path, bin_dir: Path = BIN_DIR) -> None:
        self.workdir = Path(workdir).resolve()
        self.bin_dir = Path(bin_dir)
        self.cert_dir = self.workdir / "pki"
        self.etcd_data_dir = self.workdir / "etcd-data"
        self.etcd_log = self.workdir / "etcd.log"
        self.apiserver_log = self.workdir / "kube-apiserver.log"
        self.kubeconfig: Path = self.workdir / "kubeconfig"
        self.server: str = ""
        self.etcd_url: str = ""
        #: Seconds from launching the processes to /readyz answering ok (set by start()).
        self.start_seconds: float | None = None
        self.timings: dict[str, float] = {}
        self._pki: _PKI | None = None
        self._ssl: ssl.SSLContext | None = None
        self._etcd: _Process | None = None
        self._apiserver: _Process | None = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        """Start etcd and kube-apiserver, and wait until /readyz is ok."""
        if self._apiserver is not None:
            raise ControlPlaneError("control plane already started")
        missing = [n for n in (ETCD, KUBE_APISERVER) if not os.access(self.bin_dir / n, os.X_OK)]
        if missing:
            raise ControlPlaneError(
                f"control plane binaries missing in {self.bin_dir}: {', '.join(missing)} "
                "(build them with tests/controlplane/build.sh)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        try:
            self._pki = _PKI(self.cert_dir)
            self._ssl = self._make_ssl_context()
            t0 = time.monotonic()
            for attempt in range(1, _PORT_RETRIES + 1):
                if self._start_etcd(deadline, last_attempt=attempt == _PORT_RETRIES):
                    break
            self.timings["etcd"] = time.monotonic() - t0
            t1 = time.monotonic()
            for attempt in range(1, _PORT_RETRIES + 1):
                if self._start_apiserver(deadline, last_attempt=attempt == _PORT_RETRIES):
                    break
            self.timings["kube-apiserver"] = time.monotonic() - t1
            self.start_seconds = time.monotonic() - t0
            self.timings["readyz"] = self.start_seconds
            self._wait_for_namespace("default", deadline)
            self.timings["default-namespace"] = time.monotonic() - t0
        except BaseException as exc:
            tails = self.log_tails()
            self.stop()
            if isinstance(exc, ControlPlaneError):
                raise ControlPlaneError(f"{exc}\n{tails}") from None
            if isinstance(exc, Exception):
                raise ControlPlaneError(f"control plane failed to start: {exc!r}\n{tails}") from exc
            raise

    def stop(self) -> None:
        """Terminate kube-apiserver, then etcd (SIGTERM, then SIGKILL). Idempotent."""
        with self._lock:
            procs = [p for p in (self._apiserver, self._etcd) if p is not None]
            self._apiserver = self._etcd = None
        errors: list[BaseException] = []
        for proc in procs:
            try:
                proc.stop()
            except BaseException as exc:  # keep going: never leave the other one behind
                errors.append(exc)
        _LIVE.discard(self)
        if errors:
            raise errors[0]

    def log_tails(self, lines: int = 40) -> str:
        """The last ``lines`` lines of both logs, labelled, for error messages."""
        parts = []
        for label, path in ((KUBE_APISERVER, self.apiserver_log), (ETCD, self.etcd_log)):
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
            # No controller-manager creates the "default" ServiceAccount (envtest does the same).
            "--disable-admission-plugins=ServiceAccount",
        ]
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

    def _wait_for_namespace(self, name: str, deadline: float) -> None:
        # The API server's system-namespaces controller creates default/kube-system/...
        # shortly after it serves; wait so tests can rely on "default".
        while True:
            status, _ = self.request("GET", f"/api/v1/namespaces/{name}")
            if status == 200:
                return
            if time.monotonic() >= deadline:
                raise ControlPlaneError(f"namespace {name!r} did not appear (last HTTP {status})")
            time.sleep(0.2)

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
                conds = {c.get("type"): c for c in body.get("status", {}).get("conditions", [])}
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
