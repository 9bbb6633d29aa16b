"""A sync with nothing to do, per engine, as whole processes: what every deploy
of an up-to-date cloud runs (kolla-ansible and openstack-ansible call db sync
on each run).

  ours    glance_db_sync as a managed host runs it: `python AnsiballZ_glance_db_sync.py`
          (the payload ansible-core builds, see _lib.py); changed false; given the
          connection URL Glance is given (on PostgreSQL postgresql+psycopg2://,
          Glance's driver, which a Glance host has)
  ours_psycopg  PostgreSQL only: the same with postgresql+psycopg:// (psycopg 3,
          the driver requirements.txt installs); no goal
  glance  real `glance-manage --config-file F db sync` (33.0.0), which prints
          "Database is up to date. No migrations needed."

The database is synced once by our engine and only read afterwards (checked:
still at the heads). Interleaved rounds in a rotating order; median of the repeats.

With mysql among the engines, the same on a MariaDB of the benchmark's own with TLS
(scripts/private-mariadb --tls), its Glance user REQUIRE SSL, once per URL form a
deployment writes, interleaved with each other ("url_forms" in the JSON):

  plain   ...@host:port/glance (no query: PyMySQL's default TLS, nothing verified)
  kolla   ...?ssl_ca=CA (kolla-ansible 23, glance_database_enable_tls_internal)
  openstack-ansible   ...?charset=utf8&ssl_verify_cert=true&ssl_ca=CA (os_glance,
          galera_use_ssl): PyMySQL then verifies against the system's trust store,
          which openstack-ansible's hosts hold its CA in (SSL_CERT_FILE: the system
          bundle plus the test CA, for every form alike)

    .venv/bin/python benchmarks/noop_sync.py [--smoke] [--repeats N] [--out DIR]

Last line of stdout: the result as JSON (DIR/noop_sync.json with --out).
Goal: ours at most a quarter of glance-manage db sync's time on each engine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from pathlib import Path

import _lib

GOAL = 1.0 / 4
UP_TO_DATE = "Database is up to date. No migrations needed."


def psycopg3_note(entry):
    """Ours with psycopg 3 beside the figures, where it ran (PostgreSQL)."""
    if "ours_psycopg" not in entry:
        return ""
    seconds = entry["ours_psycopg"]["median"]
    return ", with psycopg 3 %.2f s (x%.2f)" % (seconds, seconds / entry["glance"]["median"])


def main():
    args = _lib.parse_args("No-op sync: glance_db_sync vs glance-manage db sync, up to date.",
                           repeats=7, smoke_repeats=1)
    with _lib.scratch_databases(args.engines, "noop_sync") as (workdir, dbs):
        for db in dbs:
            _lib.sync_with_engine(db.url)
        _lib.log("noop_sync: building the glance_db_sync payloads with ansible-core")
        urls = [db.glance_url for db in dbs] + [db.url for db in dbs if db.url != db.glance_url]
        payloads = _lib.build_payloads("glance_db_sync", urls, workdir)
        manage = _lib.glance_manage()
        confs = dict((db.engine, _lib.glance_config(db, workdir)) for db in dbs)
        if not args.smoke:  # glance-manage's first start compiles and caches; not timed
            for db in dbs:
                _lib.run_glance(manage, confs[db.engine], "sync", workdir)

        def run_once(db, kind):
            if kind != "glance":
                url = db.glance_url if kind == "ours" else db.url
                seconds, result = _lib.run_payload(payloads[url], expect_changed=False)
                if result.get("msg") != UP_TO_DATE:
                    raise RuntimeError("%s: glance_db_sync said %r" % (db.engine, result.get("msg")))
                return seconds
            return _lib.run_glance(manage, confs[db.engine], "sync", workdir)[0]

        def kinds(db):
            return ("ours", "glance") + (("ours_psycopg",) if db.url != db.glance_url else ())

        times = _lib.interleaved_rounds(dbs, kinds, run_once,
                                        args.repeats, "noop_sync")
        for db in dbs:
            if db.version_rows() != _lib.heads():
                raise RuntimeError("%s: the database changed during the no-op syncs" % db.engine)

    engines = dict((engine, _lib.compared(by_kind, GOAL)) for engine, by_kind in times.items())
    url_forms = measure_url_forms(args) if "mysql" in args.engines else None
    result = _lib.result_header("noop_sync", args, {
        "ours": "python AnsiballZ_glance_db_sync.py on a database at the heads (the payload "
                "ansible-core builds; a managed host's run minus SSH), with Glance's connection URL",
        "ours_psycopg": "the same on PostgreSQL with postgresql+psycopg:// (psycopg 3)",
        "glance": "glance-manage --config-file F db sync (glance 33.0.0) on the same database",
    }, engines)
    line = "noop_sync: " + "; ".join(
        "%s ours %.2f s, glance %.2f s (x%.2f, goal <= x%.2f %s)%s"
        % (engine, e["ours"]["median"], e["glance"]["median"], e["ratio_ours_to_glance"], GOAL,
           "met" if e["goal_met"] else "NOT met",
           psycopg3_note(e))
        for engine, e in engines.items())
    if url_forms:
        result["url_forms"] = url_forms
        line += "; MariaDB over TLS by URL form: " + ", ".join(
            "%s ours %.2f s, glance %.2f s (x%.2f)"
            % (form, e["ours"]["median"], e["glance"]["median"], e["ratio_ours_to_glance"])
            for form, e in url_forms["forms"].items())
    _lib.finish(result, args.out, "noop_sync.json", line)


# ---- each deployment tool's URL form, on a MariaDB with TLS
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
FORMS = {"plain": "", "kolla": "?ssl_ca={ca}",
         "openstack-ansible": "?charset=utf8&ssl_verify_cert=true&ssl_ca={ca}"}


def _free_port(first=3340, last=3359):
    for port in range(first, last + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in %d-%d for the private MariaDB" % (first, last))


@contextlib.contextmanager
def private_tls_mariadb(workdir):
    """scripts/private-mariadb --tls in ``workdir``: yields (port, its lines name=value)."""
    script = str(_lib.REPO / "scripts" / "private-mariadb")
    place = ["--dir", str(Path(workdir) / "tls-mariadb"), "--port", str(_free_port())]
    started = subprocess.run(["bash", script, "start", "--tls"] + place, capture_output=True, text=True,
                             check=False)
    if started.returncode != 0:
        raise RuntimeError("the private MariaDB with TLS did not start: %s" % "\n".join(
            line for line in started.stderr.splitlines() if not line.startswith((".", "+", "*")))[-2000:])
    try:
        lines = started.stdout.splitlines()
        yield int(place[-1]), dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    finally:
        subprocess.run(["bash", script, "stop"] + place, capture_output=True, check=False)


@contextlib.contextmanager
def environment(**variables):
    """os.environ with ``variables`` (the payloads and glance-manage inherit it), then as before."""
    before = dict((name, os.environ.get(name)) for name in variables)
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def measure_url_forms(args):
    """No-op sync, ours and glance-manage's, with each deployment's URL form; {"forms": ...}."""
    workdir = _lib.workdir("noop_sync_forms")
    try:
        with private_tls_mariadb(workdir) as (port, tls):
            root = "mysql+pymysql://root@127.0.0.1:%d/" % port
            import pymysql
            pymysql.connect(host="127.0.0.1", port=port, user="root").query("CREATE DATABASE glance")
            _lib.sync_with_engine(root + "glance")
            base = "mysql+pymysql://%s@127.0.0.1:%d/glance" % (tls["ssl_user"], port)
            urls = dict((form, base + query.format(ca=tls["ssl_ca"])) for form, query in FORMS.items())
            bundle = Path(workdir) / "trust-store.pem"
            bundle.write_text((SYSTEM_BUNDLE.read_text() if SYSTEM_BUNDLE.exists() else "")
                              + Path(tls["ssl_ca"]).read_text())
            with environment(SSL_CERT_FILE=str(bundle)):
                times = _time_forms(args, workdir, urls)
            version = _lib.engine_for(root + "glance")
            with version.connect() as conn:
                rows = sorted(r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version"))
            version.dispose()
            if rows != _lib.heads():
                raise RuntimeError("url forms: the database changed during the no-op syncs")
    finally:
        _lib.remove(workdir)
    return {"server": "a MariaDB of the benchmark's own with TLS (scripts/private-mariadb --tls); "
                      "user glance_ssl REQUIRE SSL",
            "urls": dict((form, "mysql+pymysql://glance_ssl@127.0.0.1:PORT/glance" + query.format(ca="CA"))
                         for form, query in FORMS.items()),
            "forms": dict((form, _lib.compared(by_kind, GOAL)) for form, by_kind in times.items())}


def _time_forms(args, workdir, urls):
    """{form: {"ours": [s...], "glance": [s...]}}, the forms' runs interleaved."""
    _lib.log("noop_sync: building the payloads for each URL form")
    payloads = _lib.build_payloads("glance_db_sync", list(urls.values()), workdir)
    manage = _lib.glance_manage()
    confs = {}
    for form, url in urls.items():
        confs[form] = Path(workdir) / ("glance-%s.conf" % form)
        confs[form].write_text("[database]\nconnection = %s\n" % url)
        if not args.smoke:  # the first start of glance-manage with this URL is not timed
            _lib.run_glance(manage, confs[form], "sync", workdir)

    def run_once(form, kind):
        if kind == "glance":
            return _lib.run_glance(manage, confs[form], "sync", workdir)[0]
        seconds, result = _lib.run_payload(payloads[urls[form]], expect_changed=False)
        if result.get("msg") != UP_TO_DATE:
            raise RuntimeError("%s: glance_db_sync said %r" % (form, result.get("msg")))
        return seconds

    times = dict((form, {"ours": [], "glance": []}) for form in urls)
    order = [(form, kind) for form in urls for kind in ("ours", "glance")]
    for round_no in range(args.repeats):
        shift = round_no % len(order)
        for form, kind in order[shift:] + order[:shift]:
            times[form][kind].append(run_once(form, kind))
        _lib.log("noop_sync url forms: round %d/%d done" % (round_no + 1, args.repeats))
    return times


if __name__ == "__main__":
    _lib.run_main("noop_sync", main)
