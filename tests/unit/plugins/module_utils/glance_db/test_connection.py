"""Reading glance-api.conf like oslo.config, and keeping passwords out of text."""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import connection, db_errors, direct
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import ConfigurationError


def test_later_files_and_conf_d_win(tmp_path):
    main = tmp_path / "glance-api.conf"
    main.write_text("[DEFAULT]\ndebug = true\n[database]\nconnection = sqlite:////one\n")
    conf_d = tmp_path / "glance-api.conf.d"
    conf_d.mkdir()
    for name, text in {"20-db.conf": "[database]\nconnection = sqlite:////three\n",
                       "10-db.conf": "[database]\nconnection = sqlite:////two\n",
                       "99-other.conf": "[keystone_authtoken]\nauth_url = http://x\n",
                       "ignored.txt": "[database]\nconnection = sqlite:////never\n"}.items():
        (conf_d / name).write_text(text)
    assert connection.url_and_source(config_file=[str(main)])[0] == "sqlite:////one"
    assert connection.url_and_source(config_file=[str(main)], config_dir=str(conf_d))[0] == "sqlite:////three"


def test_missing_connection_is_named(tmp_path):
    conf = tmp_path / "glance-api.conf"
    conf.write_text("[database]\nmax_pool_size = 5\n")
    with pytest.raises(ConfigurationError, match=r"No \[database\] connection found in .*glance-api.conf"):
        connection.url_and_source(config_file=[str(conf)])


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


@pytest.mark.parametrize("raw, password", [
    ("mysql+pymysql://glance:Tr0ub4dor@3@127.0.0.1/glance", "Tr0ub4dor@3"),
    ("mysql+pymysql://glance:p@ss/w:rd%#@127.0.0.1/glance", "p@ss/w:rd%#"),
    ("glance:p@ss@dbhost/glance", "p@ss"),
])
def test_unencoded_at_is_refused_and_masked_from_the_raw_string(raw, password):
    redact = connection.Redactor()
    with pytest.raises(ConfigurationError, match="URL-encode the password") as refused:
        connection.url_and_source(raw, redactor=redact)
    host = raw.rsplit("@", 1)[1]
    for text in (str(refused.value), redact(raw), redact("Cannot use the database at %s" % raw)):
        assert host in text
        assert not [password[i:i + 3] for i in range(len(password) - 2) if password[i:i + 3] in text], text


def test_redactor_leaves_the_scheme_and_short_words_alone():
    redact = connection.Redactor()
    redact.add_url("mysql+pymysql://glance:p%40ssword@db/glance")
    assert redact("mysql+pymysql://glance:p%40ssword@db/glance uses pymysql") == \
        "mysql+pymysql://glance:********@db/glance uses pymysql"
    assert redact("p@ssword and p%40ssword") == "******** and ********"
    short = connection.Redactor()
    short.add_url("mysql+pymysql://glance:p@db/glance")  # too short to mask outside a URL
    assert short("mysql+pymysql") == "mysql+pymysql"


@pytest.mark.parametrize("written, used, warns", [
    ("mysql", "mysql+pymysql", False),
    ("mariadb", "mysql+pymysql", False),
    ("mysql+pymysql", "mysql+pymysql", False),
    ("mysql+mysqldb", "mysql+pymysql", True),
    ("postgres", "postgresql+psycopg", False),
    ("postgresql+psycopg", "postgresql+psycopg", False),
    ("sqlite", "sqlite+pysqlite", False),
])
def test_driver_names_an_operator_writes(written, used, warns):
    url = "%s://u@h/glance" % written if not written.startswith("sqlite") else "%s:////tmp/g.sqlite" % written
    assert connection.resolve_url(url).drivername == used
    assert bool(connection.driver_warning(url)) is warns


@pytest.mark.parametrize("written", ["mysql+pymsql", "mysql+mysqlconnector", "postgresql+pg8000", "mysql+MySQLdb"])
def test_unknown_or_misspelt_driver_is_refused_naming_the_available_ones(written):
    with pytest.raises(ConfigurationError, match=r"is unknown or not one this collection runs.*Write "):
        connection.resolve_url("%s://u@h/glance" % written)
    with pytest.raises(ConfigurationError):
        direct.parse_plain_url("%s://u:p@h/glance" % written)


def test_unsupported_database_is_named():
    with pytest.raises(ConfigurationError, match="Unsupported database 'oracle'"):
        connection.resolve_url("oracle://u@h/glance")


def test_an_error_raised_while_handling_a_lost_connection_is_reported_as_the_lost_connection():
    """SQLAlchemy refuses a statement on a connection the server dropped (PendingRollbackError):
    the module reports the driver's error behind it, which names the server and the next step."""
    import sqlalchemy as sa

    from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.module import _database_error_behind

    class Lost(Exception):
        pass

    lost = sa.exc.OperationalError("SELECT 1", None, Lost(2013, "Lost connection to MySQL server during query"))
    try:
        try:
            raise lost
        except sa.exc.OperationalError:
            raise sa.exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back.")
    except sa.exc.PendingRollbackError as secondary:
        assert _database_error_behind(secondary) is lost
    url = sa.engine.make_url("mysql+pymysql://glance:secret@127.0.0.1:4307/glance")
    msg = db_errors.describe_db_error(lost, url)
    assert "127.0.0.1:4307 stopped answering" in msg and "secret" not in msg
    assert _database_error_behind(ValueError("no database here")) is None


def test_a_refused_connection_names_the_server():
    """A node killed between two statements: the next connection is refused (2003), and the
    msg must name that node, as for a connection lost mid-statement (2013)."""
    import sqlalchemy as sa

    class Refused(Exception):
        pass

    refused = sa.exc.OperationalError(None, None, Refused(
        2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)"))
    url = sa.engine.make_url("mysql+pymysql://glance:secret@127.0.0.1:4607/glance")
    msg = db_errors.describe_db_error(refused, url)
    assert "the server at 127.0.0.1:4607 is running" in msg and "another node" in msg and "secret" not in msg
