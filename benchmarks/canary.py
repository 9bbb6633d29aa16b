"""Writers that behave like Glance API nodes of two releases during a rolling upgrade.

Release N-1 nodes know only images.is_public; release N nodes know only
images.visibility and start once expand has run. Each writer is its own process
with its own connection and does create / update / share (add a member) / delete
at a fixed rate, in short transactions, recording each operation's start,
latency and outcome. Writers own disjoint images (the ones they create plus a
slice of existing ones), so afterwards ``verify`` can say exactly which rows or
values were lost: it replays every image's writes against the phase timeline,
with the rules of Glance's Ocata triggers (ocata_expand01) and data migration
(ocata_migrate01), and
checks that the database holds one of the outcomes those rules allow.

On a Galera cluster each writer goes through one node (``urls``, one a node) and,
with ``retries``, reruns a transaction that met error 1213 as Glance does.

    python benchmarks/canary.py --url URL [--seconds 10] [--stage old|mixed|new]
    python benchmarks/canary.py --smoke   # 2,000-image dataset, N-1 writers, 3 s
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _lib  # noqa: E402

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.deps import sa  # noqa: E402

# Stages, as the shared counter holds them.
OLD_ONLY, MIXED, NEW_ONLY, STOPPED = 0, 1, 2, 3
OPERATIONS = (("create", 0.3), ("update", 0.4), ("share", 0.15), ("delete", 0.15))
VISIBILITIES = ("private", "public", "shared", "community")
DEADLOCK = 1213
# Glance 33 wraps image_create/update/destroy in oslo.db's wrap_db_retry(max_retries=50,
# retry_interval=0.5, inc_retry_interval=False, retry_on_deadlock=True).
GLANCE_RETRIES, GLANCE_RETRY_INTERVAL = 50, 0.5
CANARY_MARK = "/* canary */ "  # tells the writers' statements from the migrator's in PROCESSLIST


# ---- the writer processes
def _connect(url):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool,
                              connect_args={"connect_timeout": 10})
    conn = engine.connect()
    if conn.dialect.name == "mysql":
        conn.exec_driver_sql("SET SESSION sql_mode = 'TRADITIONAL'")  # as oslo.db does
        conn.commit()
    return engine, conn


def _now():
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


class Writer(object):
    """One API node: a release ('old' = N-1, 'new' = N), the database node it writes
    through, the images it owns, and how often it retries a deadlock."""

    def __init__(self, release, index, url, existing, rate, seed, retries=0):
        self.release = release
        self.name = "%s%d" % (release, index)
        self.url = url
        self.retries = retries
        self.rng = random.Random(seed)
        self.period = 1.0 / rate
        self.live = [image for image, members in existing]  # may still update, share, delete
        # Images with members: release N does not make them private (see _update).
        self.has_members = {image for image, members in existing if members}
        self.log = []  # (t_start, latency, op, ok, error, 1213 errors met)
        self.writes = {}  # image id -> [(t_start, t_end, kind, value)]; kind: insert/set/share/delete
        self.failed_images = set()

    def run(self, stage, ready, results):
        engine, conn = _connect(self.url)
        with ready.get_lock():
            ready.value += 1
        try:
            self._loop(stage, conn, engine)
        finally:
            conn.close()
            engine.dispose()
            results.put((self.name, self.log, self.writes, sorted(self.failed_images)))

    def _active(self, value):
        if self.release == "old":
            return value == OLD_ONLY or value == MIXED
        return value == MIXED or value == NEW_ONLY

    def _loop(self, stage, conn, engine):
        while not self._active(stage.value):  # N nodes wait for expand
            if stage.value == STOPPED:
                return
            time.sleep(0.01)
        next_at = time.monotonic()
        while self._active(stage.value):
            op = self._choose()
            started_wall, started = time.time(), time.perf_counter()
            # Chosen once: a retry reruns the same statements, as Glance's retried call does.
            image, record, statements, done = getattr(self, "_" + op)()
            deadlocks, ok, error = 0, False, None
            while True:
                try:
                    with conn.begin():
                        for sql, params in statements:
                            conn.execute(sa.text(CANARY_MARK + sql), params)
                    ok, error = True, None
                    break
                except sa.exc.DBAPIError as exc:
                    orig = getattr(exc, "orig", None)
                    error = str(orig or exc).splitlines()[0][:200]
                    if exc.connection_invalidated or conn.invalidated:
                        conn.close()
                        engine, conn = _connect(self.url)
                    code = orig.args[0] if orig is not None and orig.args else None
                    if code != DEADLOCK:
                        break
                    deadlocks += 1
                    if deadlocks > self.retries:
                        break
                    time.sleep(GLANCE_RETRY_INTERVAL)
            latency = time.perf_counter() - started
            self.log.append((started_wall, latency, op, ok, error, deadlocks))
            if ok:
                done()
                for one in record:
                    self.writes.setdefault(image, []).append(
                        (started_wall, started_wall + latency) + one)
            else:
                self.failed_images.add(image)
            next_at = max(next_at + self.period, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _choose(self):
        if not self.live:
            return "create"
        pick, total = self.rng.random(), 0.0
        for op, weight in OPERATIONS:
            total += weight
            if pick < total:
                return op
        return "create"

    # Each operation returns (image id, what it writes for verify, its statements with
    # their parameters, what to note once they committed).
    def _create(self):
        image = str(uuid.uuid4())
        name = "canary-%s-%s" % (self.name, image[:8])
        if self.release == "old":
            column, value = "is_public", self.rng.random() < 0.3
        else:
            column, value = "visibility", self.rng.choice(VISIBILITIES)
        now = _now()
        statements = [
            ("INSERT INTO images (id, name, size, status, %s, created_at, updated_at, deleted, "
             "disk_format, container_format, owner, min_disk, min_ram, protected) VALUES "
             "(:id, :name, 1024, 'active', :value, :now, :now, :f, 'raw', 'bare', 'canary', "
             "0, 0, :f)" % column,
             {"id": image, "name": name, "value": value, "now": now, "f": False}),
            ("INSERT INTO image_properties (image_id, name, value, created_at, deleted) "
             "VALUES (:id, 'canary_writer', :w, :now, :f)",
             {"id": image, "w": self.name, "now": now, "f": False})]
        return image, [("insert", column, value, name)], statements, lambda: self.live.append(image)

    def _update(self):
        image = self.rng.choice(self.live)
        name = "canary-upd-%s-%d" % (self.name, self.rng.randrange(1 << 30))
        if self.release == "old":
            column, value = "is_public", self.rng.random() < 0.3
        else:
            # Glance's Ocata migration counts a private image with members as still to
            # migrate, so such writes would hold contract off (ours and glance-manage's):
            # this load leaves them out.
            choices = VISIBILITIES[1:] if image in self.has_members else VISIBILITIES
            column, value = "visibility", self.rng.choice(choices)
        statements = [("UPDATE images SET name = :name, %s = :value, updated_at = :now WHERE id = :id"
                       % column, {"id": image, "name": name, "value": value, "now": _now()})]
        return image, [("set", column, value, name)], statements, lambda: None

    def _share(self):
        image = self.rng.choice(self.live)
        member = "tenant-%s-%d" % (self.name, self.rng.randrange(1 << 30))
        now = _now()
        statements, record = [], []
        if self.release == "new":  # release N adds members to shared images only
            statements.append(("UPDATE images SET visibility = 'shared', updated_at = :now "
                               "WHERE id = :id", {"id": image, "now": now}))
            record.append(("set", "visibility", "shared", None))
        statements.append((
            "INSERT INTO image_members (image_id, member, can_share, created_at, deleted, status) "
            "VALUES (:id, :member, :f, :now, :f, 'accepted')",
            {"id": image, "member": member, "now": now, "f": False}))
        return (image, record + [("share", None, member, None)], statements,
                lambda: self.has_members.add(image))

    def _delete(self):
        # Off the live list at once: a failed delete leaves the image uncertain, not writable.
        image = self.live.pop(self.rng.randrange(len(self.live)))
        now = _now()
        statements = [
            ("UPDATE images SET deleted = :t, deleted_at = :now, status = 'deleted', "
             "updated_at = :now WHERE id = :id", {"id": image, "now": now, "t": True}),
            ("UPDATE image_properties SET deleted = :t, deleted_at = :now "
             "WHERE image_id = :id AND deleted = :f", {"id": image, "now": now, "t": True, "f": False})]
        return image, [("delete", None, None, None)], statements, lambda: None


def _writer_main(release, index, url, existing, rate, seed, retries, stage, ready, results):
    Writer(release, index, url, existing, rate, seed, retries).run(stage, ready, results)


# ---- the load as a whole
class Canary(object):
    """Start N-1 writers; ``expanded()`` lets N writers in; ``old_nodes_gone()`` stops
    the N-1 ones (all nodes upgraded, before contract); ``stop()`` ends the run.

    ``urls`` (default: ``url`` alone) are the database nodes: writer i of each release
    writes through node i modulo their number (node 1 is ``urls[0]``)."""

    def __init__(self, url, old_writers=4, new_writers=4, rate=20.0, existing_per_writer=200,
                 seed=7, urls=None, retries=0):
        self.url = url
        self.urls = list(urls or [url])
        self.retries = retries
        self.owner = {}  # image id -> node (1-based) of the writer that owns it
        self.old_writers, self.new_writers = old_writers, new_writers
        self.rate = rate
        self.existing_per_writer = existing_per_writer
        self.seed = seed
        self.initial = {}  # existing image id -> (is_public, visibility, active members)
        self.ctx = multiprocessing.get_context("spawn")
        self.stage = self.ctx.Value("i", OLD_ONLY)
        self.ready = self.ctx.Value("i", 0)  # writers connected
        self.results = self.ctx.Queue()
        self.procs = []
        self.stage_times = {}

    def _sample_existing(self, count):
        engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("images")}
            pick = "RAND()" if conn.dialect.name == "mysql" else "RANDOM()"
            select = ", ".join(c if c in columns else "NULL"
                               for c in ("id", "is_public", "visibility"))
            rows = conn.execute(sa.text(
                "SELECT %s FROM images WHERE deleted = :f ORDER BY %s LIMIT %d"
                % (select, pick, count)), {"f": False}).all()
            members = {}
            ids = [r[0] for r in rows]
            for start in range(0, len(ids), 500):
                members.update(conn.execute(sa.text(
                    "SELECT image_id, COUNT(*) FROM image_members WHERE deleted = :f "
                    "AND image_id IN :ids GROUP BY image_id").bindparams(
                        sa.bindparam("ids", expanding=True)),
                    {"f": False, "ids": ids[start:start + 500]}).all())
        engine.dispose()
        rng = random.Random(self.seed)
        rng.shuffle(rows)
        for image, is_public, visibility in rows:
            self.initial[image] = (None if is_public is None else bool(is_public), visibility,
                                   members.get(image, 0))
        return [r[0] for r in rows]

    def start(self):
        writers = self.old_writers + self.new_writers
        existing = self._sample_existing(writers * self.existing_per_writer)
        per = self.existing_per_writer
        specs = [("old", i) for i in range(self.old_writers)] + \
                [("new", i) for i in range(self.new_writers)]
        for n, (release, index) in enumerate(specs):
            proc = self.ctx.Process(target=_writer_main, args=(
                release, index, self.urls[index % len(self.urls)],
                [(image, self.initial[image][2]) for image in existing[n * per:(n + 1) * per]],
                self.rate, self.seed * 1000 + n, self.retries, self.stage, self.ready,
                self.results), daemon=True)
            proc.start()
            self.procs.append(proc)
        deadline = time.monotonic() + 120
        while self.ready.value < len(self.procs):  # spawned writers import SQLAlchemy first
            if time.monotonic() > deadline or not all(p.is_alive() for p in self.procs):
                raise RuntimeError("canary writers did not start")
            time.sleep(0.05)
        self.stage_times["old_start"] = time.time()

    def expanded(self):
        self.stage.value = MIXED
        self.stage_times["new_start"] = time.time()

    def old_nodes_gone(self):
        self.stage.value = NEW_ONLY
        self.stage_times["old_stop"] = time.time()

    def stop(self):
        """Stop every writer; return (operations, writes per image, failed images).
        An operation is (start, latency, op, release, ok, error, node, 1213 errors met)."""
        self.stage.value = STOPPED
        self.stage_times["stop"] = time.time()
        ops, writes, failed = [], {}, set()
        for proc in self.procs:  # one result from each
            name, log, image_writes, failed_images = self.results.get(timeout=120)
            release = name.rstrip("0123456789")
            node = int(name[len(release):]) % len(self.urls) + 1
            ops.extend((t, lat, op, release, ok, err, node, dl) for t, lat, op, ok, err, dl in log)
            writes.update(image_writes)
            failed.update(failed_images)
            self.owner.update((image, node) for image in list(image_writes) + list(failed_images))
        for proc in self.procs:
            proc.join(timeout=30)
        ops.sort()
        return ops, writes, failed

    def terminate(self):
        """On failure: end writers that are still running (only ours)."""
        self.stage.value = STOPPED
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()


# ---- verification
class Timeline(object):
    """When the phases ran (wall clock).

    ``expand`` and ``contract`` are (start, end) or None; the Ocata triggers may exist
    from somewhere in expand until somewhere in contract (``contract`` None: never
    dropped). ``migrations`` are the (start, end) windows of runs that really
    migrated rows (ours; not glance-manage's, which migrates nothing).
    """

    def __init__(self, expand=None, contract=None, migrations=()):
        self.expand, self.contract = expand, contract
        self.migrations = sorted(migrations)

    def trigger(self, start, end):
        """Possible trigger states for a write somewhere in [start, end]."""
        if self.expand is None:
            return {False}
        possible = set()
        if end >= self.expand[0] and (self.contract is None or start < self.contract[1]):
            possible.add(True)
        if start < self.expand[1] or (self.contract is not None and end > self.contract[0]):
            possible.add(False)
        return possible


def _migrate_step(row, step, members):
    """One step of the Ocata data migration on one row (is_public, visibility)."""
    is_public, visibility = row
    if step == 1 and visibility is None and is_public is not None:
        return (is_public, "public" if is_public else ("shared" if members else "private"))
    if step == 2 and visibility == "private" and members:
        return (is_public, "shared")
    return row


def _apply(row, write, trigger):
    """A write on one row (is_public, visibility), with or without the triggers."""
    kind, column, value = write[2], write[3], write[4]
    is_public, visibility = row
    if kind == "insert":
        if column == "is_public":
            return (value, ("public" if value else "shared") if trigger else None)
        return (value == "public" if trigger else None, value)
    if kind == "set" and column == "is_public":
        if trigger and value != is_public:
            visibility = "public" if value else "shared"
        return (value, visibility)
    if kind == "set":
        if trigger and value != visibility:
            is_public = value == "public"
        return (is_public, value)
    return row


def _advance(states, force=False):
    """Let a migration run pass over the row: optionally (it may or may not have
    reached it yet), or by force (the run has ended). A state is (steps done, row, members)."""
    grown = set() if force else set(states)
    for done, row, members in states:
        for step in range(done + 1, 3):
            row = _migrate_step(row, step, members)
            if not force:
                grown.add((step, row, members))
        if force:
            grown.add((2, row, members))
    return grown


def possible_outcomes(initial, writes, timeline):
    """Every (is_public, visibility) the rules allow after these writes and migrations."""
    states = {(0, tuple(initial[:2]), initial[2])}
    marks = sorted([(s, "open") for s, e in timeline.migrations] +
                   [(e, "close") for s, e in timeline.migrations])
    running = False
    for write in writes:
        while marks and marks[0][0] <= write[0]:
            kind = marks.pop(0)[1]
            running = kind == "open"
            states = {(0, r, m) for d, r, m in states} if running else _advance(states, True)
        if running or any(k == "open" and t < write[1] for t, k in marks):
            states = _advance(states)
        new = set()
        for done, row, members in states:
            if write[2] == "share":
                new.add((done, row, members + 1))
                continue
            for trigger in timeline.trigger(write[0], write[1]):
                new.add((done, _apply(row, write, trigger), members))
        states = new
    for t, kind in marks:
        states = {(0, r, m) for d, r, m in states} if kind == "open" else _advance(states, True)
    return {row for done, row, members in states}


def verify(url, writes, initial, timeline, failed=(), sync_wait=False):
    """Compare the database with what the writers wrote; return counts, examples and
    the ids of lost rows. ``sync_wait``: read through a Galera node only once it has
    applied everything committed before (wsrep_sync_wait)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    report = {"images_checked": 0, "lost_rows": 0, "lost_values": 0, "lost_members": 0,
              "wrong_visibility": 0, "uncertain_images": len(failed), "examples": [],
              "lost_row_ids": []}
    failed = set(failed)
    with engine.connect() as conn:
        if sync_wait:
            conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
        columns = {c["name"] for c in sa.inspect(conn).get_columns("images")}
        select = ", ".join(c if c in columns else "NULL"
                           for c in ("id", "name", "deleted", "is_public", "visibility"))
        ids = sorted(i for i in writes if i not in failed)
        actual, members = {}, {}
        for start in range(0, len(ids), 500):
            batch = {"ids": ids[start:start + 500]}
            actual.update((r[0], r) for r in conn.execute(sa.text(
                "SELECT %s FROM images WHERE id IN :ids" % select).bindparams(
                    sa.bindparam("ids", expanding=True)), batch))
            for image, member in conn.execute(sa.text(
                    "SELECT image_id, member FROM image_members WHERE image_id IN :ids").bindparams(
                        sa.bindparam("ids", expanding=True)), batch):
                members.setdefault(image, set()).add(member)
    engine.dispose()

    def example(kind, image, detail):
        if len(report["examples"]) < 10:
            report["examples"].append({"kind": kind, "image": image, "detail": detail})

    for image in ids:
        image_writes = writes[image]
        report["images_checked"] += 1
        row = actual.get(image)
        if row is None:
            report["lost_rows"] += 1
            report["lost_row_ids"].append(image)
            example("lost_row", image, image_writes[-1][2])
            continue
        named = [w for w in image_writes if w[5]]
        if named and row[1] != named[-1][5]:
            report["lost_values"] += 1
            example("name", image, [row[1], named[-1][5]])
        deleted = any(w[2] == "delete" for w in image_writes)
        if bool(row[2]) != deleted:
            report["lost_values"] += 1
            example("deleted", image, [bool(row[2]), deleted])
        shared = {w[4] for w in image_writes if w[2] == "share"}
        if shared - members.get(image, set()):
            report["lost_members"] += len(shared - members.get(image, set()))
            example("member", image, sorted(shared - members.get(image, set())))
        start = initial.get(image, (None, None, 0))
        allowed = possible_outcomes(start, image_writes, timeline)
        is_public = None if row[3] is None else bool(row[3])
        if "is_public" in columns:
            ok = any(a == (is_public, row[4]) for a in allowed)
        else:  # with is_public gone, a NULL visibility is a lost value whatever the rules say
            ok = row[4] is not None and any(a[1] == row[4] for a in allowed)
        if not ok:
            report["wrong_visibility"] += 1
            example("visibility", image, {"found": [is_public, row[4]],
                                          "allowed": sorted(map(str, allowed))})
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--url", help="a Glance database (with is_public, e.g. at mitaka02)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stage", default="old", choices=("old", "mixed", "new"),
                        help="which releases write (mixed/new need an expanded database)")
    parser.add_argument("--writers", type=int, default=4, help="writers per release")
    parser.add_argument("--rate", type=float, default=20.0, help="operations/s per writer")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args(argv)

    def run(url):
        canary = Canary(url, args.writers, args.writers, args.rate)
        canary.start()
        try:
            if args.stage != "old":
                canary.expanded()
            if args.stage == "new":
                canary.old_nodes_gone()
            time.sleep(args.seconds)
            ops, writes, failed = canary.stop()
        except BaseException:
            canary.terminate()
            raise
        # No phase ran: the database is as expanded (or not) as it was.
        expanded = (0.0, 0.0) if args.stage != "old" else None
        report = verify(url, writes, canary.initial, Timeline(expand=expanded), failed)
        return {"operations": len(ops), "failed_writes": sum(1 for o in ops if not o[4]),
                "latency": _lib.percentiles([o[1] for o in ops]), "verify": report}

    if args.smoke:
        import dataset
        with _lib.scratch_databases(["mysql"], "canary") as (_workdir, (db,)):
            dataset.build(db.url, 2000)
            args.seconds = min(args.seconds, 3.0)
            result = run(db.url)
    else:
        result = run(args.url)
    verified = result["verify"]
    _lib.finish(result, args.out, "canary.json",
                "canary (%s writers): %d operations, %d failed; lost rows %d, lost values %d, "
                "wrong visibility %d, lost members %d" % (
                    args.stage, result["operations"], result["failed_writes"], verified["lost_rows"],
                    verified["lost_values"], verified["wrong_visibility"], verified["lost_members"]))


if __name__ == "__main__":
    main()
