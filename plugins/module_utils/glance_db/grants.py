# -*- coding: utf-8 -*-
"""What the Glance database user needs beyond Glance's own grant, and how an admin gives it.

kolla-ansible and openstack-ansible grant the Glance user ``ALL ON glance.*`` and
nothing else. On MySQL/MariaDB the collection also needs:

- on Galera, the migration lock's lease database (lock.GaleraLease): SELECT,
  INSERT, UPDATE, DELETE and CREATE on it. Granted once, for good.
- while a run creates or drops triggers (expand's and a shadow copy's; Ocata's
  contract revision, in contract and in sync, drops Glance's), where binary
  logging is on (always on Galera) and the user lacks SUPER: the global
  ``log_bin_trust_function_creators=1`` (CREATE TRIGGER and DROP TRIGGER fail
  with 1419 otherwise), on the server or node the run writes through. Set for
  the run only and set back afterwards, as kolla-ansible does around its own steps.

With an admin connection to the same server (node) ``apply`` does it; without
one it refuses, naming the statements an admin must run (docs/database-grants.md).
"""

from __future__ import annotations

from . import connection as db_connection
from .db_errors import describe_db_error
from .deps import sa
from .drivers import choose_driver
from .errors import ConfigurationError, ConnectionFailed, MissingPrivilege
from .state import galera_facts, mysql_trigger_capabilities

LEASE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE")
TRUST = "log_bin_trust_function_creators"
# Where a run writes: a variable set on one Galera node holds on that node only.
_SERVER = "SELECT @@hostname, @@port, @@datadir"


class _Rows(object):
    """The ``rows(sql)`` that state's readers take, on a SQLAlchemy connection."""

    def __init__(self, conn):
        self.conn = conn

    def rows(self, sql, parameters=None):
        return [tuple(row) for row in self.conn.exec_driver_sql(sql, parameters or ())]


def admin_url(raw, redactor):
    """The admin connection's URL (a MySQL/MariaDB URL; its database, if any, is not used)."""
    redactor.add_url(raw)
    db_connection.refuse_ambiguous(raw)
    try:
        url = sa.engine.make_url(raw)
    except Exception:  # pylint: disable=broad-except  # SQLAlchemy's parse errors vary by version
        raise ConfigurationError("admin_connection is malformed; expected e.g. mysql+pymysql://root:PASSWORD@dbhost/")
    redactor.add(url.password)
    backend, driver, _warning = choose_driver(url.drivername)
    if backend != "mysql":
        raise ConfigurationError("admin_connection is a %s URL; only MySQL/MariaDB needs an admin "
                                 "(mysql+pymysql://root:PASSWORD@dbhost/)." % backend)
    return url.set(drivername="%s+%s" % (backend, driver))


def _quote_name(name):
    return "`%s`" % name.replace("`", "``")


def _quote_string(text):
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "\\'")


def read(conn, lock_database):
    """What the connection's own user (the Glance user) has, on this server."""
    rows = _Rows(conn)
    user = rows.rows("SELECT CURRENT_USER()")[0][0]
    name, host = user.rsplit("@", 1)
    grantee = "%s@%s" % (_quote_string(name), _quote_string(host))
    triggers = mysql_trigger_capabilities(rows)
    # A grant on a pattern (glance\_%) counts where it matches: LIKE reads it as the server does.
    held = set(row[0] for row in rows.rows(
        "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s "
        "UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
        "WHERE GRANTEE = %s AND %s LIKE TABLE_SCHEMA", (grantee, grantee, lock_database)))
    galera = galera_facts(rows) is not None
    return {
        "account": grantee,
        "database": rows.rows("SELECT DATABASE()")[0][0],
        "server": _server(rows),
        "galera": galera,
        # The check of error 1419 applies on Galera even with log_bin off (it emulates one).
        "binary_logging": triggers["binary_logging"] or galera,
        "super_privilege": triggers["super_privilege"],
        "trigger_privilege": triggers["trigger_privilege"],
        TRUST: triggers[TRUST],
        "lease_privileges_missing": [p for p in LEASE_PRIVILEGES if p not in held],
    }


def _server(rows):
    hostname, port, datadir = rows.rows(_SERVER)[0]
    return "%s:%s (%s)" % (hostname, port, datadir)


def lease_statements(found, lock_database, database_exists=False):
    """CREATE DATABASE and GRANT for the lease, where the user lacks any of its privileges."""
    if not found["lease_privileges_missing"]:
        return []
    statements = [] if database_exists else [
        "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4" % _quote_name(lock_database)]
    grant = "GRANT %s ON %s.* TO %s" % (", ".join(LEASE_PRIVILEGES), _quote_name(lock_database), found["account"])
    return statements + [grant]


def trigger_grants(found, triggers):
    """TRIGGER on the Glance database, for a run that creates or drops triggers, where the user lacks it."""
    if not triggers or found["trigger_privilege"]:
        return []
    return ["GRANT TRIGGER ON %s.* TO %s" % (_quote_name(found["database"]), found["account"])]


def trust_setting(found, trust):
    """The SET GLOBAL that ``trust`` asks for, if any: True (a run that creates or drops triggers is next)
    where binary logging is on, the user lacks SUPER and the setting is off; False (the run is
    over, the setting was off before it) where it is on; None, never."""
    if trust and found["binary_logging"] and not found["super_privilege"] and not found[TRUST]:
        return "SET GLOBAL %s = 1" % TRUST
    if trust is False and found[TRUST]:
        return "SET GLOBAL %s = 0" % TRUST
    return None


def apply(engine, admin_url, lock_database, trust=None, check_mode=False):
    """Give the Glance user (``engine``'s) what the collection needs, through ``admin_url``.

    ``trust``: see trust_setting. Returns the result the module reports. Without
    ``admin_url`` (None), refuses when anything is needed: on Galera the lease's grant,
    with ``trust`` what the triggers need.
    """
    if engine.url.get_backend_name() != "mysql":
        return _result([], None, None, "Nothing to grant: on %s the collection needs no more than Glance's "
                       "own grant." % engine.url.get_backend_name())
    with engine.connect() as conn:
        found = read(conn, lock_database)
    setting = trust_setting(found, trust)
    if admin_url is None:
        grants = (lease_statements(found, lock_database) if found["galera"] else []) + trigger_grants(found, trust)
        if grants or setting:
            raise MissingPrivilege(refusal(found, lock_database, grants, setting))
        return _result([], found, None, _enough(found))
    admin = db_connection.create_engine(admin_url)
    try:
        statements = _as_admin(admin, found, lock_database, trust, setting, check_mode)
    except sa.exc.DBAPIError as exc:
        raise ConnectionFailed("Through admin_connection: %s" % describe_db_error(exc, admin.url))
    finally:
        admin.dispose()
    if not statements:
        return _result([], found, None, _enough(found))
    return _result(statements, found, setting, "%s as the admin: %s." % (
        "Would run" if check_mode else "Ran", "; ".join(statements)))


def _as_admin(admin, found, lock_database, trust, setting, check_mode):
    """The statements the admin runs (in check mode: would run); run them."""
    with admin.connect() as conn:
        rows = _Rows(conn)
        if _server(rows) != found["server"]:
            raise ConfigurationError(
                "The admin connection reaches %s, the Glance connection %s: point it at the same "
                "server (on Galera the same node: log_bin_trust_function_creators holds on one node "
                "only)." % (_server(rows), found["server"]))
        exists = rows.rows("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                           (lock_database,))[0][0]
        statements = lease_statements(found, lock_database, bool(exists)) + trigger_grants(found, trust)
        statements += [setting] if setting else []
        if not check_mode:
            for statement in statements:
                conn.execute(sa.text(statement))  # text(): its '%' reaches the driver escaped
            conn.commit()
    return statements


def _enough(found):
    return "The Glance database user %s has what the collection needs on %s." % (
        found["account"], found["server"])


def _result(statements, found, setting, msg):
    before = found[TRUST] if found else None
    return {
        "changed": bool(statements),
        "msg": msg,
        "statements": statements,
        "user": found,
        # after: what the run leaves (check mode: would leave).
        TRUST: {"before": before, "after": setting.endswith("1") if setting else before,
                "changed": bool(setting)},
    }


def refusal(found, lock_database, grants, setting):
    """One message: what the Glance user lacks here, and the statements an admin runs."""
    why = []
    if any(statement.startswith("GRANT SELECT") for statement in grants):
        why.append("on Galera the migration lock is a lease row in database %s, which it may not write"
                   % lock_database)
    if any(statement.startswith("GRANT TRIGGER") for statement in grants):
        why.append("it may not create or drop the triggers this run does (no TRIGGER privilege)")
    steps = ["%s;" % statement for statement in grants]
    if setting and setting.endswith("1"):
        why.append("binary logging is on%s and it lacks SUPER, so its CREATE and DROP TRIGGER fail (error "
                   "1419) unless %s is 1" % (" (Galera)" if found["galera"] else "", TRUST))
        steps.append("%son that %s, only while the run lasts: %s; then SET GLOBAL %s = 0."
                     % ("and " if steps else "", "node" if found["galera"] else "server", setting, TRUST))
    elif setting:
        why.append("%s is 1, and setting it back to 0 takes an admin" % TRUST)
        steps.append("%s;" % setting)
    return ("The Glance database user %s cannot do what this run needs on %s: %s. An admin runs: %s "
            "Or give admin_connection (the role: glance_db_admin_connection) and it is done for you."
            % (found["account"], found["server"], "; ".join(why), " ".join(steps)))
