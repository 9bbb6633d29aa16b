# -*- coding: utf-8 -*-
"""On Galera, DDL statements that abort no application transaction.

A DDL statement runs in Total Order Isolation (TOI): each node runs it at the same
point of the replication order and aborts (error 1213) every local transaction that
holds a metadata lock it needs, whichever table that transaction touched first (an
INSERT into image_tags holds images through its foreign key). Glance retries that only
in image_create, _update and _destroy: any other request fails (issue 24). A statement
that waits instead of aborting does not exist in TOI, and waiting for a moment with no
transaction open leaves the moment between the look and the statement.

But a TOI statement waits, rather than aborts, for a session that holds tables with
LOCK TABLES, and on release the metadata-lock queue grants its exclusive request before
the application's queued ones. So each DDL statement runs inside a hold on every node:

1. through a connection of its own to each node, ``LOCK TABLES`` every table of the
   database ``WRITE NOWAIT`` (all or nothing, never waiting while holding), on all
   nodes at once; a node busy: release all, pause briefly, try again (HOLD_TRIES);
2. no node's replication applier may be waiting behind a hold (a write committed
   elsewhere before that node's hold): else release all and try again;
3. the statement runs; each node's hold is released once the statement waits for it
   there (its TOI request is queued first), or the statement is over, or after
   RELEASE_AFTER_SECONDS. The application's transactions meanwhile wait a few tens
   of milliseconds instead of failing.

Where the holds cannot be had (a node unreachable at its wsrep_incoming_addresses, a
user without LOCK TABLES, a busy cluster for HOLD_TRIES tries), the statement runs as
before, and the run's warnings say why once.
"""

from __future__ import annotations

import random
import threading
import time

from .deps import sa

HOLD_TRIES = 200
HOLD_PAUSE_SECONDS = (0.005, 0.02)  # between tries, at random: not in step with the writers
RELEASE_AFTER_SECONDS = 1.0
POLL_SECONDS = 0.002
HOLD_THROUGH = True  # False: the gate alone (look, release, run)
_WAITING = "Waiting for table metadata lock"
LOCK_WAIT_TIMEOUT = 1205


def node_urls(conn):
    """The run's URL through each node of its cluster (wsrep_incoming_addresses), or []."""
    addresses = conn.exec_driver_sql("SHOW STATUS LIKE 'wsrep_incoming_addresses'").fetchall()
    urls = []
    for address in (addresses[0][1] if addresses else "").split(","):
        host, _sep, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            return []
        urls.append(conn.engine.url.set(host=host.strip("[]"), port=int(port)))
    return urls


class Gate(object):
    """Runs DDL statements of one run inside holds on every node (see the module's doc)."""

    def __init__(self, warn):
        self.warn = warn
        self.holders = None  # one connection per node, once connected; [] when not possible
        self.engines = []
        self.figures = {"statements": 0, "held": 0, "unheld": 0, "tries": 0, "held_seconds": 0.0}

    def _connect(self, conn):
        from .connection import create_engine
        holders = []
        try:
            urls = node_urls(conn)
            if len(urls) < 2:
                raise ValueError("wsrep_incoming_addresses names no cluster nodes")
            for url in urls:
                engine = create_engine(url, read_timeout=30)
                self.engines.append(engine)
                holder = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                # Its own look at the processlist must not wait for the node to catch up: it is
                # what holds the node back.
                holder.exec_driver_sql("SET SESSION wsrep_sync_wait = 0, lock_wait_timeout = 1")
                holder.exec_driver_sql("USE `%s`" % conn.exec_driver_sql("SELECT DATABASE()").scalar())
                holders.append(holder)
            self.holders = holders
        except Exception as exc:  # pylint: disable=broad-except
            self.holders = holders
            self._off(exc)

    def _off(self, exc):
        """No holds for the rest of the run, and a warning that says why."""
        self.close()
        self.holders = []
        self.warn("DDL statements ran without holding every Galera node first (%s): each may abort "
                  "application transactions (error 1213) that hold its tables on any node. Let this host "
                  "reach every node's address in wsrep_incoming_addresses with the run's user, and grant "
                  "it LOCK TABLES on the Glance database." % str(getattr(exc, "orig", exc)).splitlines()[0][:200])

    def close(self):
        """Close the holds' connections (the next statement connects again); a gate that could
        not connect stays off for the run, its warning given once."""
        for holder in self.holders or ():
            try:
                holder.close()
            except Exception:  # pylint: disable=broad-except
                pass
        for engine in self.engines:
            engine.dispose()
        self.engines = []
        if self.holders:
            self.holders = None

    def run(self, conn, statement):
        """Run ``statement()`` (a DDL statement on ``conn``) inside holds on every node."""
        if self.holders is None:
            self._connect(conn)
        self.figures["statements"] += 1
        if not self.holders:
            self.figures["unheld"] += 1
            return statement()
        tables = [row[0] for row in conn.exec_driver_sql(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME").fetchall()]
        ddl_id = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
        # The statement commits whatever its session's transaction read (MySQL commits before
        # DDL); committed now, that transaction's own metadata locks cannot keep the holds off.
        conn.exec_driver_sql("COMMIT")
        try:
            held = bool(tables) and self._hold(tables)
        except sa.exc.DBAPIError as exc:  # e.g. no LOCK TABLES privilege (1044): as before, said once
            self._off(exc)
            held = False
        if not held:
            self.figures["unheld"] += 1
            return statement()
        self.figures["held"] += 1
        if not HOLD_THROUGH:  # the gate alone: every node was idle on these tables a moment ago
            self._unlock(self.holders)
            return statement()
        started = time.monotonic()
        done = threading.Event()
        releaser = threading.Thread(target=self._release_when_queued, args=(ddl_id, done), daemon=True)
        releaser.start()
        try:
            return statement()
        finally:
            done.set()
            releaser.join()
            self.figures["held_seconds"] = round(self.figures["held_seconds"] + time.monotonic() - started, 3)

    def _hold(self, tables):
        """LOCK TABLES on every node at once, or on none; True once held with no applier waiting."""
        statement = "LOCK TABLES %s NOWAIT" % ", ".join("`%s` WRITE" % t for t in tables)
        for _attempt in range(HOLD_TRIES):
            self.figures["tries"] += 1
            held = self._on_every_node(lambda holder: self._lock(holder, statement))
            if all(held) and not any(self._on_every_node(self._applier_waits)):
                return True
            self._unlock(h for h, ok in zip(self.holders, held) if ok)
            time.sleep(random.uniform(*HOLD_PAUSE_SECONDS))
        return False

    @staticmethod
    def _lock(holder, statement):
        try:
            holder.exec_driver_sql(statement)
            return True
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "args", (None,))[0] != LOCK_WAIT_TIMEOUT:
                raise
            return False

    @staticmethod
    def _applier_waits(holder):
        return bool(holder.exec_driver_sql(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'system user' "
            "AND STATE LIKE %s", (_WAITING + "%",)).scalar())

    def _on_every_node(self, work):
        """``work(holder)`` on every node at once; the results in node order."""
        results = [None] * len(self.holders)
        errors = []

        def one(index, holder):
            try:
                results[index] = work(holder)
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(i, h)) for i, h in enumerate(self.holders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self._unlock(self.holders)
            raise errors[0]
        return results

    @staticmethod
    def _unlock(holders):
        for holder in holders:
            holder.exec_driver_sql("UNLOCK TABLES")

    def _release_when_queued(self, ddl_id, done):
        """Release each node's hold once the statement waits for it there, or the node has
        applied it without (its last committed seqno reached the cluster's once the statement
        was over), or RELEASE_AFTER_SECONDS after it started."""
        waiting = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE %s "
                   "AND (USER = 'system user' OR ID = %s)", (_WAITING + "%", ddl_id))
        held = list(self.holders)
        deadline = time.monotonic() + RELEASE_AFTER_SECONDS
        applied = None  # the cluster's last seqno once the statement was over: it is at or before
        try:
            while held:
                if applied is None and done.is_set():
                    applied = max(_last_committed(holder) for holder in self.holders)
                for holder in list(held):
                    if (time.monotonic() > deadline or holder.exec_driver_sql(*waiting).scalar()
                            or (applied is not None and _last_committed(holder) >= applied)):
                        holder.exec_driver_sql("UNLOCK TABLES")
                        held.remove(holder)
                time.sleep(POLL_SECONDS)
        finally:  # never a hold left behind: every write of that node would wait for it
            for holder in held:
                try:
                    holder.exec_driver_sql("UNLOCK TABLES")
                except Exception:  # pylint: disable=broad-except
                    holder.invalidate()  # its connection closed: the server releases the locks


def _last_committed(holder):
    return int(holder.exec_driver_sql("SHOW STATUS LIKE 'wsrep_last_committed'").fetchall()[0][1])
