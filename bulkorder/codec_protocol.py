"""Temporal's codec server protocol, as pure functions: what a request may say, and the
one error type (:class:`CodecRequestError`, with its HTTP status) for everything it may not.

Kept apart from the HTTP server (:mod:`bulkorder.codec_server`) so that every check on
outside input can be tested and fuzzed directly: the route, the ``Host`` header (DNS
rebinding), the content type, the bearer token, and the JSON body
``{"payloads": [...]}`` of payloads in protobuf's JSON form.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Iterable

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

ROUTES = ("decode", "encode")
#: Most payloads one request may carry (a workflow history event carries a handful).
MAX_PAYLOADS = 10_000
_PAYLOAD_FIELDS = frozenset({"metadata", "data", "externalPayloads", "external_payloads"})
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z")
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class CodecRequestError(Exception):
    """A request the codec server refuses; ``status`` is the HTTP status to answer with.

    The message is meant for the client: it names what is wrong, never a file system path
    or an exception's internals.
    """

    def __init__(self, status: HTTPStatus, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def parse_route(path: str) -> tuple[str, str | None]:
    """(``decode`` or ``encode``, the namespace in the path if any); 404 otherwise."""
    segments = [s for s in path.split("?", 1)[0].split("/") if s]
    if len(segments) == 1 and segments[0] in ROUTES:
        return segments[0], None
    if len(segments) == 2 and segments[1] in ROUTES:
        return segments[1], segments[0]
    raise CodecRequestError(HTTPStatus.NOT_FOUND, "no such endpoint: POST /decode or /encode")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` headers a server answers: its own addresses, never a stranger's name.

    A DNS-rebinding page points its own name at the server's address; the browser then
    sends that name as ``Host``. Accepted: the address it listens on; when that is
    loopback, ``localhost``, ``127.0.0.1`` and ``::1``; when it is a wildcard (``0.0.0.0``,
    ``::``), any IP literal (a rebinding attack needs a name); and the configured names.
    """

    names: frozenset[str]
    any_ip: bool = False

    @classmethod
    def serving(cls, host: str, extra_names: Iterable[str] = ()) -> HostPolicy:
        bound = host.strip("[]").lower()
        names = {bound, *(normalise_host(name) for name in extra_names)}
        if is_loopback(bound):
            names |= {"localhost", "127.0.0.1", "::1"}
        return cls(frozenset(names - {""}), any_ip=bound in _WILDCARDS)

    def check(self, header: str | None) -> None:
        host = normalise_host(header or "")
        if host and (host in self.names or (self.any_ip and _is_ip(host))):
            return
        raise CodecRequestError(
            HTTPStatus.MISDIRECTED_REQUEST,
            "this codec server does not serve that Host; add the name to BULKORDER_CODEC_SERVER_ALLOWED_HOSTS",
        )


def normalise_host(header: str) -> str:
    """The host of a ``Host`` header (``[::1]:8081`` -> ``::1``), lower case; ``""`` if malformed."""
    text = header.strip().lower().rstrip(".")
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not re.fullmatch(r":\d{1,5}", rest)) or not _is_ip(inside):
            return ""
        return inside
    if text.count(":") > 1:  # a bare IPv6 literal
        return text if _is_ip(text) else ""
    name, _, port = text.partition(":")
    name = name.rstrip(".")  # the fully qualified form, "example.com."
    if (port and not port.isdigit()) or not (_is_ip(name) or _HOST_NAME.match(name)):
        return ""
    return name


def check_content_type(value: str | None) -> None:
    media_type = (value or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise CodecRequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send Content-Type: application/json")


def check_bearer(header: str | None, token: str) -> None:
    """Constant-time comparison of ``Authorization: Bearer <token>`` with ``token``."""
    scheme, _, value = (header or "").partition(" ")
    given = value.strip().encode("utf-8", "surrogatepass")
    if not (scheme.lower() == "bearer" and hmac.compare_digest(given, token.encode())):
        reason = "missing" if not header else "wrong"
        raise CodecRequestError(
            HTTPStatus.UNAUTHORIZED,
            f"{reason} bearer token: send 'Authorization: Bearer <BULKORDER_CODEC_SERVER_TOKEN>'",
            headers={"WWW-Authenticate": 'Bearer realm="bulkorder codec server"'},
        )


def _bad_body(reason: str) -> CodecRequestError:
    return CodecRequestError(HTTPStatus.BAD_REQUEST, f'body is not {{"payloads": [...]}} in protobuf JSON: {reason}')


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _bad_body("an object has a duplicate key")
    return result


def _no_constants(name: str) -> Any:
    raise _bad_body(f"{name} is not JSON")


def parse_payloads(body: bytes, *, max_payloads: int = MAX_PAYLOADS) -> list[Payload]:
    """The payloads of a request body; :class:`CodecRequestError` (400) for anything else.

    Strict where protobuf's parser is lenient or fragile: UTF-8 only, no duplicate keys,
    no NaN, nesting refused rather than recursed into, at most ``max_payloads``.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad_body(f"not UTF-8 at byte {exc.start}") from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except CodecRequestError:
        raise
    except RecursionError:
        raise _bad_body("nested too deeply") from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not JSON"
        raise _bad_body(f"{reason} at character {getattr(exc, 'pos', 0)}") from None
    if not isinstance(document, dict) or set(document) != {"payloads"}:
        raise _bad_body('expected an object with one key, "payloads"')
    items = document["payloads"]
    if not isinstance(items, list):
        raise _bad_body('"payloads" must be a list')
    if len(items) > max_payloads:
        raise _bad_body(f"{len(items)} payloads, over the limit of {max_payloads}")
    return [_payload(index, item) for index, item in enumerate(items)]


def _payload(index: int, item: Any) -> Payload:
    where = f"payload {index}"
    if not isinstance(item, dict) or not set(item) <= _PAYLOAD_FIELDS:
        raise _bad_body(f"{where} must be an object with 'metadata' and 'data'")
    metadata = item.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _bad_body(f"{where}: 'metadata' must map names to base64 strings")
    if not isinstance(item.get("data", ""), str):
        raise _bad_body(f"{where}: 'data' must be a base64 string")
    external = item.get("externalPayloads", item.get("external_payloads", []))
    if not isinstance(external, list) or not all(isinstance(e, dict) for e in external):
        raise _bad_body(f"{where}: 'externalPayloads' must be a list of objects")
    try:
        return json_format.ParseDict(item, Payload())
    except (json_format.ParseError, ValueError, TypeError) as exc:
        # protobuf's messages name the field and the value, no internals.
        raise _bad_body(f"{where}: {str(exc)[:200]}") from None


def payloads_json(payloads: Iterable[Payload]) -> bytes:
    """The response body: the same shape as the request."""
    from temporalio.api.common.v1 import Payloads

    return json_format.MessageToJson(Payloads(payloads=list(payloads)), indent=None).encode()
