"""The reverse proxy of the production path: Debian's nginx started with the config file compose uses.

`deploy/nginx/landing-lab.conf.template` is the one file: compose mounts it into the nginx image,
which substitutes its `${NAME}`s from the environment and includes it inside `http {}`. Here the same
substitution is done in Python and the result included by a minimal main config that keeps nginx's
pid, logs and temporary files under a directory of the test's own.
"""
from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.processes import ROOT, ServiceProcess, free_port

TEMPLATE = ROOT / "deploy" / "nginx" / "landing-lab.conf.template"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# The http block of the nginx image's /etc/nginx/nginx.conf, with every path under the prefix, so a
# directive the template repeats fails here as it would in the image ("directive is duplicate").
MAIN_CONFIG = """\
daemon off;
{user}worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;

events {{
    worker_connections 1024;
}}

http {{
    default_type application/octet-stream;
    access_log {prefix}/access.log;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/conf.d/*.conf;
}}
"""


def nginx_path() -> str | None:
    for candidate in (os.environ.get("NGINX_PATH"), "/usr/sbin/nginx", shutil.which("nginx")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def template_variables(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render_template(text: str, variables: Mapping[str, str]) -> str:
    """What the nginx image does to a template (envsubst with the names of its environment):
    `${NAME}` and `$NAME` replaced for each name given; nginx's own `$variables` are not among them.
    A `${NAME}` without a value is an error here, where the image would leave it for nginx to reject."""
    missing = template_variables(text) - set(variables)
    if missing:
        raise KeyError(f"no value for {sorted(missing)} in {TEMPLATE.name}")
    if not variables:
        return text
    names = "|".join(re.escape(name) for name in sorted(variables, key=len, reverse=True))
    given = re.compile(rf"\$(?:\{{({names})\}}|({names})(?![A-Za-z0-9_]))")
    return given.sub(lambda match: variables[match.group(1) or match.group(2)], text)


@dataclass
class Proxy:
    """nginx in front of the landing service (`url`) and the dashboard (`dashboard_url`)."""

    process: ServiceProcess
    dashboard_port: int

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def stop(self) -> None:
        self.process.stop()


def start_proxy(prefix: Path, landing_port: int, dashboard_port: int, timeout: float = 30.0,
                ab_port: int | None = None) -> Proxy:
    """Start nginx in the foreground with the tested template, listening on two free loopback ports;
    returns once the landing service answers /health through it. Without ab_port the features payload
    it publishes answers 502."""
    nginx = nginx_path()
    if nginx is None:
        raise FileNotFoundError("nginx not found (apt-get install nginx, or set NGINX_PATH)")
    (prefix / "conf.d").mkdir(parents=True, exist_ok=True)
    listen_landing, listen_dashboard = free_port(), free_port()
    rendered = render_template(TEMPLATE.read_text(), {
        "LANDING_LISTEN": f"127.0.0.1:{listen_landing}",
        "DASHBOARD_LISTEN": f"127.0.0.1:{listen_dashboard}",
        "LANDING_UPSTREAM": f"127.0.0.1:{landing_port}",
        "DASHBOARD_UPSTREAM": f"127.0.0.1:{dashboard_port}",
        "AB_UPSTREAM": f"127.0.0.1:{ab_port or 1}",
    })
    (prefix / "conf.d" / "landing-lab.conf").write_text(rendered)
    # As root, nginx's workers would run as nobody, who cannot enter the test's private directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(MAIN_CONFIG.format(prefix=prefix, user=user))
    process = ServiceProcess(
        name="nginx",
        command=[nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
        env=dict(os.environ),
        port=listen_landing,
        log_path=prefix / "nginx.out",
    )
    try:
        process.start(timeout)
    except Exception:
        process.stop()  # nginx itself may be up while the landing service behind it is not
        raise
    return Proxy(process=process, dashboard_port=listen_dashboard)
