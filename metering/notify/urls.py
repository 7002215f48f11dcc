"""The SSRF rule for webhook URLs: a tenant must not make the gateway call into the
network it runs in.

A URL is http or https, names a host, carries no credentials, and every address its host
resolves to is public: not loopback, private, link-local, multicast, reserved or
unspecified (IPv4-mapped IPv6 addresses are judged by their IPv4 address). The rule is
checked when an endpoint is created and again by the resolver the delivery client
connects through (`GuardedResolver`), so a name that resolves somewhere else later (DNS
rebinding) is refused at delivery time too. `allow_private` (the setting
VOICEGW_WEBHOOKS_ALLOW_PRIVATE, for development and tests) lifts the address rule only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from metering.notify.errors import InvalidField

MAX_URL = 2000
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForbiddenAddress(OSError):
    """A webhook host resolved to an address the SSRF rule refuses."""


def forbidden(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_private or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified
            or not address.is_global)


def parse_url(url: str) -> tuple[str, int]:
    """The host and port of an acceptable URL, or InvalidField("url")."""
    if not isinstance(url, str) or not 8 <= len(url) <= MAX_URL:
        raise InvalidField("url", f"must be an http or https URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidField("url", f"is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidField("url", "must use http or https")
    if parts.username is not None or parts.password is not None:
        raise InvalidField("url", "must not carry credentials")
    if not parts.hostname:
        raise InvalidField("url", "must name a host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[Address]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidField("url", f"the host {host!r} does not resolve") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, checked: syntax always, resolved addresses unless `allow_private`."""
    host, port = parse_url(url)
    if allow_private:
        return url
    for address in await resolve(host, port):
        if forbidden(address):
            raise InvalidField("url", "resolves to a loopback, private, link-local, "
                                      "multicast or reserved address")
    return url


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing forbidden addresses: the check happens on the very
    addresses the connection uses. IP literals never reach a resolver: `check_target`
    covers them."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self.allow_private:
            for result in results:
                if forbidden(ipaddress.ip_address(result["host"].split("%")[0])):
                    raise ForbiddenAddress(f"{host} resolves to a forbidden address")
        return results

    async def close(self) -> None:
        await self._inner.close()


def check_target(url: str, *, allow_private: bool) -> None:
    """At delivery: the URL's syntax again, and an IP-literal host's address."""
    host, _ = parse_url(url)
    if allow_private:
        return
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: GuardedResolver checks what it resolves to
    if forbidden(address):
        raise ForbiddenAddress(f"{host} is a forbidden address")
