"""The outbound webhook policy (canvas_project.webhooks): which hosts and addresses a webhook may reach, what a
run record shows of its URL, and the signature's definition."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from canvas_project import webhooks


@pytest.fixture
def hosts(settings):
    def use(*entries: str) -> None:
        settings.WEBHOOK_ALLOWED_HOSTS = list(entries)

    return use


@pytest.mark.parametrize(
    ("entries", "url", "allowed"),
    [
        (["hooks.example.com"], "https://hooks.example.com/x", True),
        (["hooks.example.com"], "https://HOOKS.Example.COM./x", True),  # case and a trailing dot
        (["hooks.example.com"], "https://api.hooks.example.com/x", False),
        (["hooks.example.com"], "https://hooks.example.com.evil.net/x", False),
        ([".example.com"], "https://example.com/x", True),
        ([".example.com"], "https://a.b.example.com/x", True),
        ([".example.com"], "https://badexample.com/x", False),
        (["*"], "https://anything.example.org/x", True),
        (["*"], "http://198.51.100.7/x", True),  # an address host is a host
        (["198.51.100.7"], "http://198.51.100.7:8080/x", True),
        (["198.51.100.0/24"], "http://198.51.100.99/x", True),
        (["198.51.100.7"], "http://198.51.100.8/x", False),
        (["2001:db8::/32"], "http://[2001:db8::7]/x", True),
        (["[2001:db8::7]"], "http://[2001:db8::7]/x", True),
        ([], "https://hooks.example.com/x", False),
    ],
)
def test_the_allow_list(hosts, entries, url, allowed):
    hosts(*entries)
    if allowed:
        webhooks.parse_target(url)
    else:
        with pytest.raises(webhooks.WebhookRefused) as refused:
            webhooks.parse_target(url)
        assert refused.value.code == "webhook_host_not_allowed"


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.1.1", "non-public"),  # shared address space (CGNAT)
        ("0.0.0.0", "private"),
        ("224.0.1.1", "non-public"),  # multicast
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped: judged as 10.0.0.1
        ("::ffff:8.8.8.8", None),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
    ],
)
def test_addresses(hosts, address, refused):
    hosts("*")
    reason = webhooks.address_refusal(ipaddress.ip_address(address))
    assert (reason is None) if refused is None else (refused in reason)


def test_a_listed_address_or_network_may_be_private_but_metadata_never(hosts):
    hosts("*", "10.20.0.0/16", "127.0.0.1", "169.254.0.0/16")
    assert webhooks.address_refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert webhooks.address_refusal(ipaddress.ip_address("::ffff:10.20.3.4")) is None
    assert webhooks.address_refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert "private" in webhooks.address_refusal(ipaddress.ip_address("10.21.0.1"))
    assert "loopback" in webhooks.address_refusal(ipaddress.ip_address("127.0.0.2"))
    assert webhooks.address_refusal(ipaddress.ip_address("169.254.1.1")) is None
    assert "metadata" in webhooks.address_refusal(ipaddress.ip_address("169.254.169.254"))


def test_a_name_resolving_to_a_refused_address_is_refused(hosts):
    hosts("localhost")
    with pytest.raises(webhooks.WebhookRefused) as refused:
        webhooks.check_url("http://localhost:9/x")
    assert refused.value.code == "webhook_address_refused" and "loopback" in refused.value.message
    hosts("localhost", "127.0.0.1", "::1")
    target = webhooks.check_url("http://localhost:9/x")
    assert target.host == "localhost" and target.port == 9


def test_the_target_keeps_the_name_for_the_host_header_and_connects_to_the_address(hosts):
    hosts("*")
    target = webhooks.parse_target("https://Hooks.Example.com:8443/in/box?token=t#frag")
    assert target.host_header == "hooks.example.com:8443" and target.path == "/in/box?token=t"
    assert target.url_for(ipaddress.ip_address("192.0.2.1")) == "https://192.0.2.1:8443/in/box?token=t"
    assert target.url_for(ipaddress.ip_address("2001:db8::1")) == "https://[2001:db8::1]:8443/in/box?token=t"
    assert webhooks.parse_target("http://example.com").path == "/"
    assert webhooks.parse_target("https://example.com:443/").host_header == "example.com"


def test_a_run_record_shows_the_url_without_its_query_or_user_info():
    assert webhooks.shown_url("https://hooks.example.com/in?token=secret#x") == "https://hooks.example.com/in"
    assert webhooks.shown_url("http://u:p@h.example.com:81/a") == "http://h.example.com:81/a"


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id": "r"}'
    expected = hmac.new(b"whsec_k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.signature("whsec_k", 1700000000, body) == f"v1={expected}"
