"""Data-steward tools: ask a worker why a profile holds its identifiers, send identity commands.

``scv explain`` reads ``/profiles/{id}/explain`` from a worker (the page is routed to the
worker that owns the identity graph); ``scv command`` produces an ``unmerge``, ``ban_link``,
``link``, ``consent``, ``object`` or ``erase`` command to ``identity.commands.v1``, where the
resolver carries it out or dead-letters it with the reason.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import orjson
from confluent_kafka import Producer

from scv.kafka import producer_config
from scv.schemas import validator
from scv.settings import Settings
from scv.topics import Topics


def fetch_explanation(
    settings: Settings, profile_id: str, *, text: bool, url: str | None = None
) -> str:
    """The explanation from a worker's HTTP port, as text or indented JSON."""
    base = url or f"http://{settings.web_host}:{settings.web_port}"
    query = "?format=text" if text else ""
    request = urllib.request.Request(
        f"{base}/profiles/{urllib.parse.quote(profile_id, safe='')}/explain{query}"
    )
    if settings.api_token is not None:
        request.add_header("Authorization", f"Bearer {settings.api_token.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            body = bytes(resp.read())
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace")
        raise RuntimeError(f"worker answered {err.code}: {detail}") from None
    except OSError as err:
        raise RuntimeError(f"cannot reach a worker at {base}: {err}") from None
    if text:
        return body.decode()
    return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()


def parse_identifier(key: str) -> dict[str, str]:
    """``type:value`` (as the CLI takes it) -> the command's ``{"type", "value"}``."""
    kind, sep, value = key.partition(":")
    if not sep or not kind or not value:
        raise ValueError(f"identifier must look like type:value, got {key!r}")
    return {"type": kind, "value": value}


def build_command(
    kind: str,
    identifiers: list[str],
    *,
    profile_id: str | None = None,
    reason: str | None = None,
    requested_by: str | None = None,
    consent: dict[str, bool] | None = None,
    source: str | None = None,
    withdraw: bool = False,
) -> dict[str, Any]:
    """A valid ``identity.commands.v1`` message (checked against the schema here, so a typo
    fails at the steward's prompt and not in the commands DLQ).

    For ``consent``, ``object`` and ``erase`` without a profile id the first identifier is
    the subject and the others (erase: further identifiers of the person) follow it.
    """
    idents = [parse_identifier(k) for k in identifiers]
    if profile_id is not None:
        subject: dict[str, Any] = {"profile_id": profile_id}
    elif idents:
        subject = idents[0]
        if kind in ("consent", "object", "erase"):
            idents = idents[1:]
    else:
        raise ValueError("name the profile (--profile) or at least one identifier")
    command: dict[str, Any] = {
        "command_id": f"cmd-{uuid.uuid4()}",
        "type": kind,
        "timestamp": time.time(),
        "subject": subject,
    }
    if idents:
        command["identifiers"] = idents
    if consent:
        command["consent"] = consent
    if source:
        command["source"] = source
    if withdraw:
        command["withdraw"] = True
    if reason:
        command["reason"] = reason
    if requested_by:
        command["requested_by"] = requested_by
    validator("identity.commands.v1")(command)
    return command


def send_command(settings: Settings, command: dict[str, Any]) -> None:
    producer = Producer(producer_config(settings))
    subject = command["subject"]
    key = subject.get("profile_id") or f"{subject['type']}:{subject['value']}"
    producer.produce(Topics(settings).commands, key=key.encode(), value=orjson.dumps(command))
    if producer.flush(15) != 0:
        raise RuntimeError(f"could not deliver the command to {settings.bootstrap_servers}")
