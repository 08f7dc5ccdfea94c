"""`binbot serve`: prepare the instance, show the admin token once, run gunicorn (threaded
workers), the retraining workers and, with ``--front``, nginx with HTTPS before them.

Like a notebook server printing its token: the first start creates an admin credential and
prints it; later starts say one exists (only its hash is stored, so it cannot be shown again;
`--new-admin-token` makes another).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from binbot.errors import BinbotError

STOP_SECONDS = 20  # Ctrl-C: how long the children get to finish before they are killed


def prepare(new_token: bool, log: Callable[[str], None]) -> None:
    """Provision the instance (schema, starter model) and make sure an admin can log in."""
    from server import create_app
    from server.admin.tokens import admin_token_exists, create_admin_token
    from server.config import masked_database_url
    from server.extensions import db
    from server.provision import provision
    from server.registry.bundles import published_version

    app = create_app()
    log(f"Database: {masked_database_url(app.config['SQLALCHEMY_DATABASE_URI'])}")
    provision(app, log=log)
    with app.app_context():
        current = published_version()
        log(f"Data folder: {app.config['BINBOT_DATA_DIR']}")
        log(f"Published model: {current.version if current else 'none'}")
        webclient = Path(app.config["BINBOT_WEBCLIENT_DIR"])
        if (webclient / "index.html").is_file():
            log(f"Web client: {webclient}")
        else:
            log(f"Web client: not built in {webclient} (`make run` builds it; or `npm run build`)")
        if new_token or not admin_token_exists():
            note = "binbot serve --new-admin-token" if new_token else "binbot serve, first start"
            log(f"Admin token (shown once, keep it): {create_admin_token(note)}")
        else:
            log("An admin token exists (run with --new-admin-token to make another).")
        db.engine.dispose()  # gunicorn workers open their own connections


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2  # gunicorn processes
    threads: int = 4  # threads per gunicorn process
    retrain_workers: int = 1
    front: bool = False  # nginx with HTTPS before gunicorn
    https_port: int = 8443
    new_token: bool = False


def check_can_listen(host: str, port: int, option: str) -> None:
    """Fail at once, in one line, where the server could not listen: gunicorn would otherwise
    retry for 5 s, log its own errors, and leave nothing serving."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror:
        raise BinbotError(f"--host {host} is not an address this machine knows") from None
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn and nginx do
        try:
            probe.bind(address)
        except OSError as exc:
            why = {
                errno.EADDRINUSE: "is in use (another BinBot, or another program): stop it, "
                f"or choose another port with {option}",
                errno.EACCES: f"needs root (ports below 1024 do): choose another with {option}",
                errno.EADDRNOTAVAIL: "is not on this machine: check --host",
            }.get(exc.errno, f"cannot be listened on: {exc.strerror}")
            raise BinbotError(f"{host_and_port(host, port)} {why}") from None


HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")


def listen_host(text: str) -> str:
    """--host as an address or a host name, an IPv6 address with or without brackets
    (``[::1]`` was "not an address this machine knows"). ``*``, which the resolver here takes
    for loopback while gunicorn could not resolve it (it retried, then stopped after set-up),
    and other text that names no host are refused, saying what to write instead."""
    bare = text.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    if is_address(bare) or (len(bare) <= 253 and HOSTNAME.fullmatch(bare)):
        return bare
    raise BinbotError(
        f"--host {text!r} is not an address or a host name: every address is 0.0.0.0 (IPv4) "
        "or :: (IPv6), this machine only 127.0.0.1"
    )


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_and_port(host: str, port: int) -> str:
    """``host:port`` as gunicorn's --bind, nginx's listen and a URL want it: an IPv6 address
    in brackets (``[::1]:8000``; ``:::8000`` made gunicorn fail after everything was set up)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_wildcard(host: str) -> bool:
    """Whether `host` means every address of this machine (0.0.0.0, ::)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's loopback (only it can connect)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return all(_loopback(ipaddress.ip_address(address.split("%")[0])) for address in addresses)


def _loopback(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, also as an IPv4-mapped IPv6 address (::ffff:127.0.0.1; Python 3.11's
    ``is_loopback`` says no to that)."""
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def exposure_warning(options: ServeOptions) -> str | None:
    """Said at start when gunicorn itself faces other machines. Its threads read a request as
    it arrives, so a client that sends slowly holds one until it is done, and 50 such
    connections from one machine left nobody else answered (`make bench-slow`); nginx (--front)
    holds them instead, with timeouts."""
    if options.front or is_loopback(options.host):
        return None
    threads = options.workers * options.threads
    return (
        f"WARNING: {options.host} can be reached from other machines, and without --front a "
        f"client that sends its request slowly holds one of the {threads} gunicorn threads "
        "until it is done (a few dozen such connections stop the service): on a network "
        "that others reach, serve with --front"
    )


def serve(options: ServeOptions, log: Callable[[str], None]) -> int:
    """gunicorn (and nginx with --front) and the retraining workers; Ctrl-C stops them.
    Returns the exit code: 0 when stopped, 1 when gunicorn or nginx ended on its own."""
    from server import create_app
    from server.supervise import Supervisor

    check_can_listen(options.host, options.port, "--port")
    if options.front:
        check_can_listen(options.host, options.https_port, "--https-port")
    prepare(options.new_token, log)
    if warning := exposure_warning(options):
        log(warning)
    app = create_app()
    children, url = service_processes(options, Path(app.config["BINBOT_INSTANCE_DIR"]))
    log(
        f"Serving on {url} with {options.workers} gunicorn processes x {options.threads} "
        f"threads and {options.retrain_workers} retraining worker(s) (Ctrl-C stops)"
    )
    supervisor = Supervisor(app, children, log)

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C, and SIGTERM from a process manager (systemd, docker stop), stop the children
    # cleanly; SIGINT is set explicitly because a shell starts background jobs ignoring it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    ended = None
    try:
        ended = supervisor.run()
    except KeyboardInterrupt:
        log("stopping ...")
    finally:
        # Ctrl-C reaches the whole process group; once stopping, more of it is only noise.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop(STOP_SECONDS)
    return 1 if ended else 0


def service_processes(options: ServeOptions, instance: Path):
    """The children to run, and the address people open."""
    from server.front import prepare_front
    from server.supervise import Child

    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ)
    bind = host_and_port(options.host, options.port)
    url = f"http://{bind}/"
    children = []
    if options.front:
        bind = f"127.0.0.1:{free_port()}"  # only nginx talks to gunicorn
        env["BINBOT_PROXIES"] = "1"
        front = prepare_front(instance, options.host, options.port, options.https_port, bind)
        children.append(Child("nginx", front.command(), critical=True))
        url = f"{', '.join(front.urls())} (and http on {options.port})"
    children.append(
        Child(
            "gunicorn",
            [os.path.join(bin_dir, "gunicorn"), "--workers", str(options.workers),
             "--worker-class", "server.gunicorn_worker.JsonErrorThreadWorker",
             "--threads", str(options.threads),
             "--bind", bind, "--graceful-timeout", str(STOP_SECONDS // 2),
             # binbot supervises gunicorn itself; gunicorn's control socket lives in $HOME,
             # where a second BinBot on the machine would take it over and then remove it.
             "--no-control-socket",
             "--access-logfile", "-", "server:create_app()"],
            critical=True, env=env,
        )
    )  # fmt: skip
    for number in range(1, options.retrain_workers + 1):
        worker = [sys.executable, "-m", "binbot", "worker"]
        children.append(Child(f"retraining worker {number}", worker, critical=False, env=env))
    return children, url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
