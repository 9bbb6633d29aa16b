"""The direct MySQL read's TLS: PyMySQL's PREFERRED mode, set up without the CA store."""

from __future__ import annotations

import ssl

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import direct

pymysql = pytest.importorskip("pymysql")

# Everything that decides what a handshake offers, accepts and verifies.
SETTINGS = ("protocol", "verify_mode", "check_hostname", "options", "minimum_version",
            "maximum_version", "post_handshake_auth", "security_level")
# Python 3.13's default context adds partial-chain verification: moot when nothing is verified.
MOOT_FLAGS = getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)


def _pymysql_preferred_context():
    """The context PyMySQL itself makes when given no TLS option."""
    conn = pymysql.connections.Connection.__new__(pymysql.connections.Connection)
    return pymysql.connections.Connection._create_ssl_ctx(conn, {})


def test_context_is_pymysqls_own_but_the_ca_store():
    ours, theirs = direct.unverified_tls_context(), _pymysql_preferred_context()
    assert theirs.verify_mode == ssl.CERT_NONE  # what makes the CA store unused
    for name in SETTINGS:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.verify_flags & ~MOOT_FLAGS == theirs.verify_flags & ~MOOT_FLAGS
    assert [c["name"] for c in ours.get_ciphers()] == [c["name"] for c in theirs.get_ciphers()]
    assert ours.cert_store_stats()["x509_ca"] == 0


def test_tls_options_keep_pymysqls_verifying_context():
    """Only the no-option case is replaced: a CA given still verifies the server."""
    cls = direct._preferred_tls_connection(pymysql)
    conn = cls.__new__(cls)
    ca = ssl.get_default_verify_paths().capath
    ctx = conn._create_ssl_ctx({"capath": ca})
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_direct_read_offers_tls_when_the_server_has_it():
    """PREFERRED stays on: the connection asks for TLS with the replaced context."""
    cls = direct._preferred_tls_connection(pymysql)
    conn = cls(host="127.0.0.1", defer_connect=True)
    assert conn.ssl is True and conn._ssl_required is False
    assert conn.ctx.verify_mode == ssl.CERT_NONE and conn.ctx.cert_store_stats()["x509_ca"] == 0
