"""A MySQL or PostgreSQL URL without a database name is refused by every module with one
msg naming the fix, on the driver-only reads and through SQLAlchemy alike (it was an
AttributeError in facts and purge). sqlite:// (an in-memory database) is left as it was."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

from test_bad_input import _run_playbook

MODULES = {"sync": {}, "expand": {}, "migrate": {}, "contract": {}, "facts": {}, "purge": {},
           "metadefs": {}, "backup": {"dest_dir": "/tmp"}}
EXPECT = "names no database: add the Glance database's name after the host"


def test_every_module_refuses_a_url_without_a_database(tmp_path):
    password = "nodb@:/%" + uuid.uuid4().hex[:8]
    enc = quote(password, safe="")
    conf = tmp_path / "glance-api.conf"
    conf.write_text("[database]\nconnection = mysql+pymysql://glance:%s@127.0.0.1:3306/\n" % enc)
    urls = {
        "MariaDB": "mysql+pymysql://glance:%s@127.0.0.1:3306/" % enc,
        "MariaDB, no slash": "mysql+pymysql://root@127.0.0.1:3306",
        "MariaDB, query only": "mysql+pymysql://glance:%s@127.0.0.1/?charset=utf8" % enc,
        "PostgreSQL": "postgresql://postgres:%s@127.0.0.1:5432/" % enc,
    }
    cases = [("%s, %s" % (label, module), module, dict(args, connection=url), {})
             for module, args in MODULES.items() for label, url in urls.items()]
    cases.append(("config_file, facts", "facts", {"config_file": str(conf)}, {}))
    cases.append(("config_file, sync", "sync", {"config_file": str(conf)}, {}))
    kept = ("sqlite://, facts", "facts", {"connection": "sqlite://"}, {})

    results = _run_playbook(tmp_path, cases + [kept])

    for (name, module, args, keywords), result in zip(cases, results):
        msg = result.get("msg", "")
        assert result.get("failed") is True and EXPECT in msg, (name, result)
        assert "Traceback" not in msg and "\n" not in msg.strip(), (name, msg)
    assert not results[-1].get("failed"), results[-1]  # an empty in-memory database, read as before
    shown = json.dumps(results)
    assert password not in shown and enc not in shown
