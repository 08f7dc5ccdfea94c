"""`binbot serve`: prepare the instance, show the admin token once, run gunicorn and a worker.

Like a notebook server printing its token: the first start creates an admin credential and
prints it; later starts say one exists (only its hash is stored, so it cannot be shown again;
`--new-admin-token` makes another).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

STOP_SECONDS = 20  # Ctrl-C: how long the children get to finish before they are killed


def prepare(new_token: bool, log: Callable[[str], None]) -> None:
    """Provision the instance (schema, starter model) and make sure an admin can log in."""
    from server import create_app
    from server.admin.tokens import admin_token_exists, create_admin_token
    from server.extensions import db
    from server.provision import provision
    from server.registry.bundles import published_version

    app = create_app()
    log(f"Database: {app.config['SQLALCHEMY_DATABASE_URI']}")
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
            log(f"Admin token (shown once, keep it): {create_admin_token()}")
        else:
            log("An admin token exists (run with --new-admin-token to make another).")
        db.engine.dispose()  # gunicorn workers open their own connections


def serve(host: str, port: int, workers: int, new_token: bool, log: Callable[[str], None]) -> None:
    """gunicorn for the API and one retraining worker; Ctrl-C stops both."""
    prepare(new_token, log)
    log(f"Serving on http://{host}:{port}/ with {workers} gunicorn workers (Ctrl-C stops)")

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C, and SIGTERM from a process manager (systemd, docker stop), stop the children
    # cleanly; SIGINT is set explicitly because a shell starts background jobs ignoring it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    bin_dir = os.path.dirname(sys.executable)
    children = [
        subprocess.Popen([sys.executable, "-m", "binbot", "worker"]),
        subprocess.Popen(
            [os.path.join(bin_dir, "gunicorn"), "--workers", str(workers),
             "--bind", f"{host}:{port}", "--graceful-timeout", str(STOP_SECONDS // 2),
             "--access-logfile", "-", "server:create_app()"]
        ),
    ]  # fmt: skip
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        log("a server process ended; stopping the others")
    except KeyboardInterrupt:
        log("stopping ...")
    finally:
        # Ctrl-C reaches the whole process group; once stopping, more of it is only noise.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in children:
            if child.poll() is None:
                child.terminate()  # SIGTERM: gunicorn and the worker both stop cleanly on it
        deadline = time.monotonic() + STOP_SECONDS
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
