"""Reading glance-api.conf like oslo.config, and keeping passwords out of text."""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import connection
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import ConfigurationError


def test_later_files_and_conf_d_win(tmp_path):
    main = tmp_path / "glance-api.conf"
    main.write_text("[DEFAULT]\ndebug = true\n[database]\nconnection = sqlite:////one\n")
    conf_d = tmp_path / "glance-api.conf.d"
    conf_d.mkdir()
    (conf_d / "20-db.conf").write_text("[database]\nconnection = sqlite:////three\n")
    (conf_d / "10-db.conf").write_text("[database]\nconnection = sqlite:////two\n")
    (conf_d / "99-other.conf").write_text("[keystone_authtoken]\nauth_url = http://x\n")
    (conf_d / "ignored.txt").write_text("[database]\nconnection = sqlite:////never\n")
    assert connection.read_config_files([str(main)]) == "sqlite:////one"
    assert connection.read_config_files([str(main)], str(conf_d)) == "sqlite:////three"


def test_missing_connection_is_named(tmp_path):
    conf = tmp_path / "glance-api.conf"
    conf.write_text("[database]\nmax_pool_size = 5\n")
    with pytest.raises(ConfigurationError, match=r"No \[database\] connection found in .*glance-api.conf"):
        connection.read_config_files([str(conf)])


@pytest.mark.parametrize("password", ["s3cret", "p@ss:w/rd%?&#", "we ird+pl us"])
def test_redactor_masks_raw_and_encoded_password(password):
    from urllib.parse import quote, quote_plus
    redact = connection.Redactor()
    url = connection.resolve_url("mysql+pymysql://glance:%s@db/glance" % quote(password, safe=""),
                                 redactor=redact)
    assert url.password == password
    for form in (password, quote(password, safe=""), quote_plus(password)):
        assert form not in redact("error near %s in %s" % (form, "x"))
    assert redact("mysql+pymysql://other:zzz@h/d") == "mysql+pymysql://other:********@h/d"


def test_drivers_glance_configs_name_are_replaced_by_installed_ones():
    assert connection.resolve_url("mysql://u@h/glance").drivername == "mysql+pymysql"
    assert connection.resolve_url("postgresql+psycopg2://u@h/glance").drivername in (
        "postgresql+psycopg", "postgresql+psycopg2")
    with pytest.raises(ConfigurationError, match="Unsupported database 'oracle'"):
        connection.resolve_url("oracle://u@h/glance")
