# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The connection options every module of the collection takes.
    DOCUMENTATION = r"""
options:
  connection:
    description:
      - SQLAlchemy URL of the Glance database, as in the C([database] connection) option of C(glance-api.conf).
      - For example V(mysql+pymysql://glance:secret@dbhost/glance), V(postgresql+psycopg://glance:secret@dbhost/glance)
        or V(sqlite:////var/lib/glance/glance.sqlite).
      - The drivers are PyMySQL for C(mysql://) and C(mariadb://), psycopg (or psycopg2) for C(postgresql://).
        With no driver named, the installed one is used. C(mysql+mysqldb://) (MySQLdb, oslo.db's default) and
        C(postgresql+psycopg2://) when psycopg2 is not installed are run with PyMySQL and psycopg, with a warning.
        Any other driver name (a misspelt one, or C(mysql+mysqlconnector://)) is refused, naming those available.
      - URL-encode the password (C(@) as C(%40), C(:) as C(%3A), C(/) as C(%2F), C(%) as C(%25)), as oslo.db
        needs too; a URL with more than one C(@) before its host is refused.
      - The password never appears in any output, nor any part of it.
      - Mutually exclusive with O(config_file); one of the two is required.
    type: str
  config_file:
    description:
      - Glance config files to read C([database] connection) from, for example V(/etc/glance/glance-api.conf).
      - Read as C(glance-manage --config-file) reads them, with oslo.config's rules; in order, a later file winning.
        Only C([database] connection) counts (not C([DEFAULT] connection), nor the old C(sql_connection)).
      - In a value, C($$) (or C(\$)) is a literal C($), and C($name) or C(${name}) is the value of Glance's option
        C(name) of the same section or of C([DEFAULT]) (C($section.name) for another one). A name Glance does
        not define (C($state_path), for one) is refused, as C(glance-manage) fails on it.
      - As in oslo.config, an environment variable C(OS_<SECTION>__<OPTION>) of the module's process (such as
        C(OS_DATABASE__CONNECTION)) wins over the files.
    type: list
    elements: path
  config_dir:
    description:
      - A config directory such as V(/etc/glance/glance-api.conf.d); its C(*.conf) files (not hidden ones) are read
        after O(config_file), in name order, a later file winning, as C(glance-manage --config-dir) does.
      - Unset, the directories C(glance-manage) reads by default are read first, so that O(config_file) overrides
        them. They are the first found of C(glance.conf.d), C(glance-api.conf.d) and C(glance-manage.conf.d) in
        C(~/.glance/), C(~/), C(/etc/glance/) and C(/etc/), for example V(/etc/glance/glance-api.conf.d).
    type: path
requirements:
  - SQLAlchemy >= 2.0
  - Alembic
  - PyMySQL (MySQL/MariaDB) or psycopg (PostgreSQL)
notes:
  - The Python requirements are needed on the host that runs the module, usually the controller or a database client host.
"""

    # The migration lock's options: every module that writes the Glance database (the phases,
    # purge, metadefs, restore) takes the same lock with them (one purge, one metadefs load and
    # one phase never run at once).
    LOCK = r"""
options:
  lock_timeout:
    description:
      - Seconds to wait for the database-level migration lock held by another run (MySQL C(GET_LOCK), on a
        Galera cluster a lease the cluster replicates, a PostgreSQL advisory lock, or a lock file beside a SQLite
        database).
      - Runs from many hosts at once serialize on this lock; the later ones find nothing to do. The phases,
        M(openstack_ops.glance.glance_db_purge), M(openstack_ops.glance.glance_db_metadefs) and
        M(openstack_ops.glance.glance_db_restore) all take this one lock.
    type: int
    default: 60
  galera_lock_ttl:
    description:
      - On a MariaDB Galera cluster, seconds the migration lock's lease lives without renewal. A heartbeat
        renews it every fifth of that; a killed or frozen run's lease is taken over after it expires. See
        C(docs/galera.md).
    type: int
    default: 30
"""

    # Where a run's lease and progress live: the writing modules take it beside LOCK, and the
    # readers (the facts, glance_db_wait) alone, to read there.
    LOCK_DATABASE = r"""
options:
  galera_lock_database:
    description:
      - On a MariaDB Galera cluster, the database holding the migration lock's lease table (C(GET_LOCK) is local
        to one node); on any MySQL/MariaDB server, the one holding a run's progress record (C(docs/progress.md)).
        Created when missing; the Glance database user needs C(SELECT), C(INSERT), C(UPDATE), C(DELETE) and
        C(CREATE) on it. Never the Glance database itself.
      - M(openstack_ops.glance.glance_db_facts) and M(openstack_ops.glance.glance_db_wait) read the lease and the
        progress there, so give them the value the writing modules run with.
    type: str
    default: glance_migration_lock
"""

    # Options of the modules that change the schema (sync, expand, migrate, contract).
    SCHEMA_CHANGE = r"""
options:
  ddl_lock_wait_timeout:
    description:
      - On MySQL/MariaDB, the session C(lock_wait_timeout) in seconds for schema changes (and
        C(innodb_lock_wait_timeout), 2 at most), so a change waiting for a metadata lock or a table lock cannot
        hold application queries for long; it is retried after a pause.
    type: int
    default: 10
  mysql_datadir:
    description:
      - On MySQL/MariaDB, the server's data directory (C(SELECT @@datadir)) as this host sees it, when the module
        runs on the database server as a user that may write there (C(mysql) or C(root)).
      - Each C(ALTER TABLE) then runs while a second hard link holds the table's C(.ibd) file. A table rebuild
        ends under an exclusive metadata lock that queues the application's writes, and deleting the old
        file is a good part of it; with the link the server only removes a name, and the module frees the file
        afterwards, with no lock held (on 1,000,000 images the stall went from about 140 ms to about 55 ms).
      - Refused on other engines, or when the directory does not hold this database's files or is not writable.
        Where a link cannot be made (a database directory on another file system), that table's C(ALTER TABLE)
        runs without it and the module warns.
      - Unset (the default), nothing is done on the server's file system.
    type: path
  read_timeout:
    description:
      - On MySQL/MariaDB, seconds a statement may go unanswered before the run fails (PyMySQL's C(read_timeout)
        and C(write_timeout)), so a run through a frozen server or Galera node ends with an error naming it
        instead of waiting for ever. Keep it above the longest statement (a table rebuild).
    type: int
    default: 900
  galera_min_cluster_size:
    description:
      - On a MariaDB Galera cluster, refuse to write when the node's cluster has fewer nodes than this.
      - Writing phases always refuse a node that is not C(Primary) and C(Synced).
    type: int
"""

    # The options of the phases that copy tables (expand, contract).
    SHADOW_COPY = r"""
options:
  hold_swap:
    description:
      - On MySQL/MariaDB, hold each shadow copy's swap until the operator releases it, as gh-ost's postponed
        cut-over does. Its value is the path of a release file on the host that runs the module.
      - Once a copy has all its rows, the module writes this file (saying which table waits) and waits while it
        exists; remove it to release the swap (C(rm <path>)), at a moment of your choosing. Each copy of the run
        holds again, so a run that copies three times writes the file three times.
      - While held, the copy's triggers keep it in step (each write to the table also writes the copy), the
        migration lock stays held (on Galera its lease is renewed by its heartbeat thread), and the time counts
        toward Ansible's C(async) limit, past which the job is killed and the next run copies again.
      - Refused before anything is changed when the file's directory is missing or not writable.
      - Unset (the default), each swap follows its copy at once.
    type: path
"""
