"""The production front: nginx before gunicorn, with HTTPS.

Why nginx (Debian's package) rather than Caddy: nginx buffers a request body completely before
it reaches the application (``proxy_request_buffering``), so a client that trickles its upload
ties up one cheap nginx connection instead of a gunicorn thread; its timeouts for slow headers
and bodies are explicit; it compresses, and it serves precompressed files (``gzip_static``).
Caddy would give automatic certificates, but it streams request bodies to the backend, which
is the very attack this front is for.

``binbot serve --front`` writes the configuration into ``<instance>/front/`` and runs nginx in
the foreground next to gunicorn. Certificates: ``BINBOT_TLS_CERT`` and ``BINBOT_TLS_KEY`` when
set (a real one in production), otherwise a local certificate authority made once in
``<instance>/front/tls/``, whose ``ca.crt`` a phone on the LAN can be told to trust (README).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from binbot.errors import BinbotError
from server.serve import host_and_port, is_address, is_wildcard

NGINX = "/usr/sbin/nginx"
MIME_TYPES = Path("/etc/nginx/mime.types")
BODY_LIMIT_MB = 10
# Errors nginx itself answers (too large, timeouts, the application down) are JSON too.
FRONT_ERRORS = {
    400: "bad request",
    408: "the request was too slow to arrive; try again",
    413: f"request too large (limit {BODY_LIMIT_MB} MB)",
    414: "request line too long",
    494: "request header too large",  # nginx's own code; the client gets 431 (below)
    502: "the service is restarting; try again shortly",
    503: "the service is busy; try again shortly",
    504: "the service took too long to answer; try again",
}
# nginx's internal codes, answered with the standard status.
CLIENT_STATUS = {494: 431}


@dataclass(frozen=True)
class Front:
    folder: Path  # <instance>/front
    host: str  # the address nginx listens on (--host)
    http_port: int
    https_port: int
    upstream: str  # host:port of gunicorn
    cert: Path
    key: Path

    @property
    def config_file(self) -> Path:
        return self.folder / "nginx.conf"

    def urls(self) -> list[str]:
        """The addresses to open: for a wildcard host, each address of this machine that the
        local certificate names (0.0.0.0 is no address a phone can open)."""
        hosts = lan_addresses() if is_wildcard(self.host) else [self.host]
        return [f"https://{host_and_port(host, self.https_port)}/" for host in hosts]

    def command(self) -> list[str]:
        return [NGINX, "-p", str(self.folder), "-c", str(self.config_file), "-g", "daemon off;"]


def prepare_front(
    instance: Path, host: str, http_port: int, https_port: int, upstream: str
) -> Front:
    """Write nginx's configuration (and a local certificate when none is configured); nginx
    listens on `host` only (it listened on every IPv4 address whatever --host said)."""
    if not Path(NGINX).exists():
        raise BinbotError(f"{NGINX} is missing: run scripts/ensure-nginx (Debian's nginx)")
    folder = instance / "front"
    for sub in ("logs", "temp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    cert, key = configured_certificate() or local_certificate(folder / "tls", host)
    front = Front(folder, host, http_port, https_port, upstream, cert, key)
    front.config_file.write_text(nginx_config(front), encoding="utf-8")
    return front


def configured_certificate() -> tuple[Path, Path] | None:
    cert, key = os.environ.get("BINBOT_TLS_CERT"), os.environ.get("BINBOT_TLS_KEY")
    if not cert and not key:
        return None
    if not (cert and key and Path(cert).is_file() and Path(key).is_file()):
        raise BinbotError("set both BINBOT_TLS_CERT and BINBOT_TLS_KEY to readable files")
    return Path(cert).absolute(), Path(key).absolute()  # nginx reads them from its own folder


def lan_addresses() -> list[str]:
    """This machine's addresses a phone on the same network could use, and loopback."""
    found = {"127.0.0.1"}
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks a route
            found.add(probe.getsockname()[0])
    except OSError:
        pass
    return sorted(found, key=ipaddress.ip_address)


def local_certificate(tls: Path, host: str) -> tuple[Path, Path]:
    """A local certificate authority (made once) and a server certificate for this machine:
    localhost, its LAN address, and the address it listens on when that is a particular one."""
    tls.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key, ca_cert = tls / "ca.key", tls / "ca.crt"
    if not ca_cert.exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
                 "-keyout", ca_key, "-out", ca_cert, "-subj", "/CN=BinBot local CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    addresses = set(lan_addresses())
    if is_address(host) and not is_wildcard(host):
        addresses.add(str(ipaddress.ip_address(host)))
    ordered = sorted(map(ipaddress.ip_address, addresses), key=lambda ip: (ip.version, ip))
    names = ["DNS:localhost", *(f"IP:{a}" for a in ordered)]
    cert, key = tls / "server.crt", tls / "server.key"
    wanted = ",".join(names)
    if not cert.exists() or (tls / "names").read_text() != wanted:
        request = tls / "server.csr"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", request,
                 "-subj", "/CN=BinBot")  # fmt: skip
        extensions = tls / "server.ext"
        extensions.write_text(
            f"subjectAltName={wanted}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        )
        _openssl("x509", "-req", "-in", request, "-CA", ca_cert, "-CAkey", ca_key,
                 "-CAcreateserial", "-out", cert, "-days", "397", "-extfile", extensions)  # fmt: skip
        (tls / "names").write_text(wanted)
    return cert, key


def _openssl(*args) -> None:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        raise BinbotError(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")


def _json_errors() -> str:
    """An internal location per error. Not named locations: nginx cannot hand a request whose
    request line it refused (414) to a named location, and answers 500 instead."""
    lines = []
    for status, message in FRONT_ERRORS.items():
        answered = CLIENT_STATUS.get(status, status)
        changed = f"={answered} " if answered != status else ""
        lines.append(f"        error_page {status} {changed}/.binbot-error-{status};")
        lines.append(
            f"        location = /.binbot-error-{status} {{ internal; "
            f"default_type application/json; add_header Retry-After 5 always; "
            f'return {answered} \'{{"error": "{message}", "status": {answered}}}\'; }}'
        )
    return "\n".join(lines)


def extra_types(known: Path = MIME_TYPES) -> str:
    """An nginx `types` block for the extensions the web app needs that nginx's own list
    lacks (Debian's knows wasm: naming it again made nginx warn at every start)."""
    text = known.read_text(encoding="utf-8") if known.is_file() else ""
    listed = {word.rstrip(";") for word in text.split()}
    wanted = {"wasm": "application/wasm", "webmanifest": "application/manifest+json"}
    lines = " ".join(f"{kind} {ext};" for ext, kind in wanted.items() if ext not in listed)
    return f"types {{ {lines} }}" if lines else ""


def nginx_config(front: Front) -> str:
    folder = front.folder
    return f"""# Written by `binbot serve --front` (server/front.py); changes here are overwritten.
worker_processes auto;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log warn;
events {{ worker_connections 4096; }}

http {{
    include {MIME_TYPES};
    {extra_types()}
    access_log {folder}/logs/access.log;
    client_body_temp_path {folder}/temp/body;
    proxy_temp_path {folder}/temp/proxy;
    fastcgi_temp_path {folder}/temp/fastcgi;
    uwsgi_temp_path {folder}/temp/uwsgi;
    scgi_temp_path {folder}/temp/scgi;
    server_tokens off;

    # Slow clients wait here, not in gunicorn: headers and bodies have short timeouts, and a
    # body reaches the application only once it has arrived whole.
    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 30s;
    keepalive_timeout 30s;
    client_max_body_size {BODY_LIMIT_MB}m;
    client_body_buffer_size 1m;
    proxy_request_buffering on;
    proxy_buffering on;
    proxy_read_timeout 60s;

    gzip on;
    gzip_vary on;
    gzip_proxied any;
    gzip_min_length 512;
    gzip_types text/css text/plain application/javascript text/javascript application/json
               application/manifest+json application/wasm image/svg+xml;

    upstream binbot {{ server {front.upstream}; keepalive 32; }}

    server {{
        listen {host_and_port(front.host, front.http_port)};
        location / {{ return 301 https://$host:{front.https_port}$request_uri; }}
    }}

    server {{
        listen {host_and_port(front.host, front.https_port)} ssl http2;
        ssl_certificate {front.cert};
        ssl_certificate_key {front.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        add_header Strict-Transport-Security "max-age=31536000" always;

        location / {{
            proxy_pass http://binbot;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}
{_json_errors()}
    }}
}}
"""
