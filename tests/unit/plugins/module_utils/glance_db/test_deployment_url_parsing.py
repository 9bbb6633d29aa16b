"""The deployment tools' database URLs, read by the driver-only fast path: the query
options kolla-ansible and openstack-ansible write reach the driver exactly as
SQLAlchemy's dialect hands them over; any other option is left to SQLAlchemy."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import connection, db_errors, direct

KOLLA = "mysql+pymysql://glance:pw@10.0.0.10:3306/glance?ssl_ca=/etc/glance/certs/root.crt"
OSA = ("mysql+pymysql://glance:pw@172.29.236.100:3306/glance"
       "?charset=utf8&ssl_verify_cert=true&ssl_ca=/etc/ssl/certs/ExampleCorpRoot.crt")
OSA_WITHOUT_TLS = "mysql+pymysql://glance:pw@172.29.236.100:3306/glance?charset=utf8"
# What create_engine or connect_direct add on their own: the timeouts, the default charset.
OURS_ONLY = ("connect_timeout", "read_timeout", "write_timeout")


def _theirs(raw):
    """The keyword arguments SQLAlchemy's dialect gives the driver for ``raw``."""
    url = connection.resolve_url(raw)
    kwargs = url.get_dialect()().create_connect_args(url)[1]
    kwargs.pop("client_flag", None)  # SQLAlchemy's own FOUND_ROWS flag, not the URL's
    return kwargs


def _ours(raw):
    url = direct.parse_plain_url(raw)
    assert url is not None, raw
    kwargs = direct.direct_connect_args(url)
    for key in OURS_ONLY:
        kwargs.pop(key, None)
    if isinstance(kwargs.get("password"), bytes):  # PyMySQL's Latin-1 fix (connection.mysql_password)
        kwargs["password"] = kwargs["password"].decode("utf-8")
    return kwargs


@pytest.mark.parametrize("raw", [
    KOLLA, OSA, OSA_WITHOUT_TLS,
    "mysql+pymysql://glance:pw@db/glance?charset=utf8&ssl_verify_cert=true",  # OSA without a CA file
    "mysql+pymysql://glance_x509@db:3307/glance?ssl_ca=/ca.pem&ssl_cert=/c.pem&ssl_key=/k.pem",
    "mysql+pymysql://glance@db/glance?ssl_ca=/ca.pem&ssl_check_hostname=false",
    "mysql+pymysql://glance@db/glance?ssl_capath=/etc/ssl/certs&ssl_cipher=ECDHE-RSA-AES256-GCM-SHA384",
    "mysql+pymysql://glance@db/glance?charset=utf8mb4",
    "postgresql+psycopg2://glance:pw@db/glance?sslmode=verify-full&sslrootcert=/ca.pem",
    "postgresql+psycopg://glance@db:5433/glance?sslmode=require&sslcert=/c.pem&sslkey=/k.pem",
])
def test_the_driver_gets_what_sqlalchemys_dialect_gives_it(raw):
    theirs, ours = _theirs(raw), _ours(raw)
    if "charset" not in theirs and ours.get("charset") == "utf8":
        ours.pop("charset")  # create_engine's default, added on both paths
    assert ours == theirs


def test_kolla_and_osa_forms_become_pymysqls_arguments():
    assert direct.parse_plain_url(KOLLA).driver_options == {"ssl": {"ca": "/etc/glance/certs/root.crt"}}
    assert direct.parse_plain_url(OSA).driver_options == {
        "charset": "utf8", "ssl_verify_cert": "true", "ssl": {"ca": "/etc/ssl/certs/ExampleCorpRoot.crt"}}
    assert direct.parse_plain_url("mysql+pymysql://g@db/glance?ssl_check_hostname=No").driver_options == \
        {"ssl": {"check_hostname": False}}


def test_kolla_without_a_ca_file_is_a_plain_url_as_for_sqlalchemy():
    """kolla writes ?ssl_ca= with openstack_cacert empty: SQLAlchemy drops the blank value."""
    raw = "mysql+pymysql://glance:pw@db:3306/glance?ssl_ca="
    assert direct.parse_plain_url(raw).driver_options == {}
    assert dict(sa.engine.make_url(raw).query) == {}


LEFT_TO_SQLALCHEMY = [
    "mysql+pymysql://glance@db/glance?charset=utf8&connect_timeout=5",  # an option of no deployment tool's
    "mysql+pymysql://glance@db/glance?ssl_ca=/ca.pem&ssl_disabled=true",
    "mysql+pymysql://glance@db/glance?ssl_verify_identity=true",
    "mysql+pymysql://glance@db/glance?ssl_check_hostname=perhaps",  # SQLAlchemy names the bad value
    "mysql+pymysql://glance@db/glance?ssl_ca=/a.pem&ssl_ca=/b.pem",  # SQLAlchemy would pass a list
    "mysql+pymysql://glance@db/glance?sslmode=require",  # PostgreSQL's keyword on MySQL
    "postgresql+psycopg2://glance@db/glance?ssl_ca=/ca.pem",  # and MySQL's on PostgreSQL
    "postgresql+psycopg2://glance@db/glance?sslmode=require&application_name=x",
    "sqlite:////var/lib/glance/glance.sqlite?timeout=5",
]


def test_the_tools_options_are_taken_and_any_other_is_left_to_sqlalchemy():
    assert direct.parse_plain_url(KOLLA) is not None and direct.parse_plain_url(OSA) is not None
    taken = [raw for raw in LEFT_TO_SQLALCHEMY if direct.parse_plain_url(raw) is not None]
    assert taken == []


def test_the_query_is_shown_like_sqlalchemys_and_the_password_is_not():
    url = direct.parse_plain_url(OSA)
    shown = url.render_as_string()
    assert "pw" not in shown
    assert shown.split("?", 1)[1] == sa.engine.make_url(OSA).render_as_string().split("?", 1)[1]
    assert url.query["ssl_ca"] == "/etc/ssl/certs/ExampleCorpRoot.crt"


def test_a_refused_login_over_tls_options_still_names_tls():
    """describe_db_error reads the URL's query: with a CA but no client certificate,
    MariaDB's 1045 may mean an account that requires TLS."""
    url = direct.parse_plain_url(KOLLA)
    refused = Exception(1045, "Access denied for user 'glance'@'10.0.0.5' (using password: YES)")
    msg = db_errors.describe_db_error(refused, url)
    assert "requires TLS" in msg and "pw" not in msg.replace("password", "")
