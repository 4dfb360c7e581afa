"""Connecting to RabbitMQ from settings, with capped exponential backoff and jitter.

Every connection Exchanger opens goes through :func:`connect`, so TLS, heartbeats, the blocked-
connection timeout and the reconnect policy are defined once.
"""

from __future__ import annotations

import ssl
import threading

import pika
from loguru import logger
from pika.adapters.blocking_connection import BlockingConnection
from pika.adapters.utils.connection_workflow import AMQPConnectorException
from pika.exceptions import AMQPConnectionError, ProbableAccessDeniedError, ProbableAuthenticationError

from exchanger.backoff import Backoff
from exchanger.errors import Unreachable
from exchanger.settings import RabbitMQSettings


def connection_parameters(settings: RabbitMQSettings, *, name: str) -> pika.ConnectionParameters:
    """pika parameters; ``name`` shows up in the management UI as the connection name."""
    ssl_options = None
    if settings.use_tls:
        context = ssl.create_default_context(cafile=settings.tls_ca_file)
        if not settings.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        ssl_options = pika.SSLOptions(context, server_hostname=settings.host)
    return pika.ConnectionParameters(
        host=settings.host,
        port=settings.port,
        virtual_host=settings.virtual_host,
        credentials=pika.PlainCredentials(settings.username, settings.password.get_secret_value()),
        heartbeat=settings.heartbeat_s,
        blocked_connection_timeout=settings.blocked_connection_timeout_s,
        connection_attempts=1,
        socket_timeout=5,
        ssl_options=ssl_options,
        client_properties={"connection_name": name},
    )


def describe(settings: RabbitMQSettings) -> str:
    scheme = "amqps" if settings.use_tls else "amqp"
    return f"{scheme}://{settings.username}@{settings.host}:{settings.port}/{settings.virtual_host.lstrip('/')}"


def connect(
    settings: RabbitMQSettings,
    *,
    name: str,
    attempts: int | None = None,
    stop: threading.Event | None = None,
) -> BlockingConnection:
    """Open a blocking connection, retrying with backoff.

    ``attempts`` None retries until ``stop`` is set (daemons); a number gives up with
    :class:`~exchanger.errors.Unreachable` after that many tries (publishers that must answer now).
    """
    backoff = Backoff(initial_s=0.5, max_s=settings.reconnect_max_s)
    parameters = connection_parameters(settings, name=name)
    attempt = 0
    while True:
        attempt += 1
        try:
            return BlockingConnection(parameters)
        except (AMQPConnectionError, AMQPConnectorException) as exc:  # the latter: a broker that never answers
            # the handshake (it took the TCP connection), which pika raises as is, not as AMQPConnectionError
            reason = f"RabbitMQ at {describe(settings)} unreachable ({type(exc).__name__}: {exc})"
            if isinstance(exc, ProbableAccessDeniedError):
                reason += (f"; does the virtual host exist and may {settings.username} use it? "
                           f"rabbitmqctl add_vhost {settings.virtual_host} && rabbitmqctl set_permissions "
                           f"-p {settings.virtual_host} {settings.username} '.*' '.*' '.*'")
            elif isinstance(exc, ProbableAuthenticationError):
                reason += "; check RABBITMQ_USERNAME and RABBITMQ_PASSWORD"
            if (attempts is not None and attempt >= attempts) or (stop is not None and stop.is_set()):
                raise Unreachable(reason, system="rabbitmq") from exc
            wait = backoff.delay(attempt)
            logger.warning("{}; reconnect attempt {} in {:.1f}s", reason, attempt + 1, wait)
            if stop is not None:
                if stop.wait(wait):
                    raise Unreachable(reason + "; stopping", system="rabbitmq") from exc
            else:
                threading.Event().wait(wait)
