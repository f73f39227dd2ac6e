"""--proxy-headers: X-Forwarded-For/-Proto and Forwarded (RFC 7239) read right to left past the
trusted proxies, believed from trusted peers only, and what apps then see; the one list of
trusted peers (--trusted-proxy, --forwarded-allow-ips) and the configurations it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from mutls.apps.asgi import http_scope
from mutls.apps.facts import connection_facts
from mutls.apps.peers import TrustedPeers, split_peers
from mutls.apps.proxy_headers import ProxyHeaders
from mutls.apps.wsgi import wsgi_environ
from mutls.cli.serve import build_parser, config_from_args
from mutls.errors import UsageError
from mutls.http.proxy_headers import Relayed, parse_forwarded, parse_node, relayed
from mutls.server.config import ServerConfig

from helpers import parse_request

PEERS = TrustedPeers.parse(["127.0.0.1", "10.0.0.0/8", "::1"])
TRUSTED = PEERS.trusts_host


def said(*headers: tuple[str, str]) -> Relayed:
    return relayed([(k.encode(), v.encode()) for k, v in headers], TRUSTED)


@pytest.mark.parametrize(
    ("xff", "client"),
    [
        ("203.0.113.7", ("203.0.113.7", 0)),
        # the rightmost untrusted entry; what a client put on the left is not believed
        ("1.1.1.1, 203.0.113.7", ("203.0.113.7", 0)),
        ("1.1.1.1, 203.0.113.7, 10.1.2.3, 10.0.0.1", ("203.0.113.7", 0)),
        # every entry trusted: the leftmost (uvicorn's rule)
        ("10.9.9.9, 10.0.0.1", ("10.9.9.9", 0)),
        # ports and IPv6, bracketed or not
        ("203.0.113.7:4711", ("203.0.113.7", 4711)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        # a name is not an address: the walk stops at the proxy that wrote it
        ("unknown, 10.0.0.1", ("10.0.0.1", 0)),
        ("evil.example, 10.1.1.1, 10.0.0.1", ("10.1.1.1", 0)),
        ("unknown", None),
        ("", None),
    ],
)
def test_x_forwarded_for_walks_from_the_right(xff: str, client: tuple[str, int] | None) -> None:
    assert said(("X-Forwarded-For", xff)).client == client


def test_several_x_forwarded_for_fields_are_one_list() -> None:
    relay = said(("X-Forwarded-For", "1.1.1.1, 203.0.113.7"), ("X-Forwarded-For", "10.0.0.1"))
    assert relay.client == ("203.0.113.7", 0)


@pytest.mark.parametrize(
    ("headers", "scheme"),
    [
        ((("X-Forwarded-Proto", "https"),), "https"),
        ((("X-Forwarded-Proto", "HTTP"),), "http"),
        ((("X-Forwarded-Proto", "wss"),), "https"),
        ((("X-Forwarded-Proto", "gopher"),), None),
        # one entry per hop: the chosen client's
        (
            (("X-Forwarded-For", "203.0.113.7, 10.0.0.1"), ("X-Forwarded-Proto", "https, http")),
            "https",
        ),
        # not one per hop: the nearest proxy's
        ((("X-Forwarded-For", "203.0.113.7, 10.0.0.1"), ("X-Forwarded-Proto", "https")), "https"),
    ],
)
def test_x_forwarded_proto(headers: tuple[tuple[str, str], ...], scheme: str | None) -> None:
    assert said(*headers).scheme == scheme


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=192.0.2.60;proto=https;by=203.0.113.43", Relayed(("192.0.2.60", 0), "https")),
        ('for="[2001:db8:cafe::17]:4711"', Relayed(("2001:db8:cafe::17", 4711))),
        ("for=192.0.2.43, for=198.51.100.17", Relayed(("198.51.100.17", 0))),
        (
            "for=192.0.2.43;proto=https, for=10.0.0.1;proto=http",
            Relayed(("192.0.2.43", 0), "https"),
        ),
        ('For="_gazonk"', Relayed()),
        ("for=unknown, for=10.0.0.1", Relayed(("10.0.0.1", 0))),
        # malformed: ignored whole
        ("for=192.0.2.43;for=192.0.2.44", Relayed()),
        ("for", Relayed()),
        ('for="192.0.2.43', Relayed()),
        ("for=192.0.2.43,,", Relayed()),
    ],
)
def test_forwarded(value: str, expected: Relayed) -> None:
    assert said(("Forwarded", value)) == expected


def test_parse_forwarded_quoting() -> None:
    assert parse_forwarded('for="a\\"b";proto=https') == [{"for": 'a"b', "proto": "https"}]
    assert parse_forwarded('for="a,b;c"') == [{"for": "a,b;c"}]


def test_both_spellings_agreeing_or_not() -> None:
    agree = said(("Forwarded", "for=203.0.113.7;proto=https"), ("X-Forwarded-For", "203.0.113.7"))
    assert agree == Relayed(("203.0.113.7", 0), "https")
    # a client's Forwarded passed on by an nginx that sets X-Forwarded-For: neither is believed
    spoof = said(("Forwarded", "for=198.51.100.1"), ("X-Forwarded-For", "203.0.113.7"))
    assert spoof.client is None and spoof.conflict
    proto = said(("Forwarded", "proto=http"), ("X-Forwarded-Proto", "https"))
    assert proto.scheme is None and proto.conflict


@pytest.mark.parametrize(
    "text",
    [
        *("1.2.3.4:", "1.2.3.4:x", "1.2.3.4:99999", "[::1", "[::1]x", "[1.2.3.4]"),
        *("fe80::1%eth0", "_x", "[" + "0:" * 40 + ":1]"),
    ],
)
def test_parse_node_refuses(text: str) -> None:
    assert parse_node(text) is None


def test_peers() -> None:
    assert split_peers(["127.0.0.1,10.0.0.0/8", " ::1 "]) == ("127.0.0.1", "10.0.0.0/8", "::1")
    assert PEERS.trusts(("::ffff:127.0.0.1", 1)) and PEERS.trusts(("10.2.3.4", 1))
    assert not PEERS.trusts(("192.0.2.1", 1)) and not PEERS.trusts(None)
    assert not PEERS.trusts_host("localhost")
    everyone = TrustedPeers.parse(["*"])
    assert everyone.trusts(("192.0.2.1", 1)) and everyone.trusts(("2001:db8::1", 1))
    with pytest.raises(UsageError, match="--trusted-proxy nope"):
        TrustedPeers.parse(["nope"])


REQUEST = (
    b"GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1, 203.0.113.7\r\n"
    b"X-Forwarded-Proto: https\r\n\r\n"
)


def adapters(facts: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    request = parse_request(REQUEST)
    return wsgi_environ(request, b"", facts), http_scope(request, facts, {})


def test_apps_see_the_client_from_a_trusted_peer() -> None:
    proxy = ProxyHeaders(PEERS)
    base = connection_facts(("127.0.0.1", 5000), ("127.0.0.1", 8080))
    facts, _ = proxy.request_facts(base, parse_request(REQUEST), ("127.0.0.1", 5000))
    env, scope = adapters(facts)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]) == (
        "203.0.113.7",
        "0",
        "https",
    )
    assert (scope["client"], scope["scheme"]) == (("203.0.113.7", 0), "https")
    # the headers reach the app as they came
    assert env["HTTP_X_FORWARDED_FOR"] == "1.1.1.1, 203.0.113.7"
    # the next request on the connection, without headers: the peer again (nothing sticks)
    again, _ = proxy.request_facts(
        facts, parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), base.client
    )
    assert (again.client, again.scheme) == (("127.0.0.1", 5000), "http")


def test_apps_do_not_believe_an_untrusted_peer() -> None:
    proxy = ProxyHeaders(PEERS)
    base = connection_facts(("192.0.2.9", 5000), ("127.0.0.1", 8080))
    facts, relay = proxy.request_facts(base, parse_request(REQUEST), ("192.0.2.9", 5000))
    assert relay == Relayed() and facts is base
    env, scope = adapters(facts)
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("192.0.2.9", "http")
    assert (scope["client"], scope["scheme"]) == (("192.0.2.9", 5000), "http")
    assert env["HTTP_X_FORWARDED_FOR"] == "1.1.1.1, 203.0.113.7"


def args(*argv: str) -> ServerConfig:
    return config_from_args(build_parser().parse_args(list(argv)))


def test_cli_one_list_and_uvicorns_alias(tmp_path: Any) -> None:
    config = args(
        "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8", "--trusted-proxy", "::1", "--proxy-headers"
    )
    assert config.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")
    assert config.proxy_headers and not config.tls


def test_proxy_headers_and_protocol_are_allowed_with_tls(test_pki: Any) -> None:
    server = test_pki.identities["server"]
    for flag in ("proxy_headers", "proxy_protocol"):
        config = ServerConfig(identity=server, trusted_proxies=("10.0.0.1",), **{flag: True})
        assert config.tls


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"proxy_headers": True}, "--proxy-headers needs the proxies to believe"),
        ({"proxy_protocol": True}, "--proxy-protocol needs the proxies to believe"),
        ({"trusted_proxies": ("10.0.0.1",)}, "needs what to believe"),
        (
            {
                "trusted_proxies": ("*",),
                "forwarded_cert_header": "X-Client-Cert",
                "client_cert": "optional",
            },
            "anyone forge",
        ),
        (
            {
                "trusted_proxies": ("10.0.0.1",),
                "forwarded_cert_header": "X-Client-Cert",
                "client_cert": "optional",
                "proxy_protocol": True,
            },
            "contradict",
        ),
        ({"fds": (-1,)}, "--fd -1"),
    ],
)
def test_config_refuses(changes: dict[str, Any], message: str) -> None:
    from mutls.tls import ClientCertMode

    if "client_cert" in changes:
        changes = {**changes, "client_cert": ClientCertMode(changes["client_cert"])}
    with pytest.raises(UsageError, match=message):
        ServerConfig(**changes)


def test_forwarded_certificates_still_refuse_tls(test_pki: Any) -> None:
    """Today's rule stays for forwarded-certificate headers: the proxy terminates TLS."""
    from mutls.tls import ClientCertMode

    with pytest.raises(UsageError, match="drop --cert"):
        ServerConfig(
            identity=test_pki.identities["server"],
            trusted_proxies=("127.0.0.1",),
            forwarded_cert_header="X-Client-Cert",
            client_cert=ClientCertMode.OPTIONAL,
            proxy_headers=True,
        )
