"""Real Glance's reading of its config files: run with the oracle virtualenv's Python.

Registers Glance's options the way ``glance-manage`` does (its imports, its
command, oslo.log's options, its defaults), then parses each case's
``--config-file`` / ``--config-dir`` arguments with oslo.config and prints, as
JSON, ``CONF.database.connection`` or the error. One process for all cases.

    python glance_conf_oracle.py cases < cases.json    # [{"files": [...], "dir": ...}, ...]
        -> {"results": [{"url": ...} or {"error": ...}, ...], "module": text of the next one}
    python glance_conf_oracle.py module > ../../plugins/module_utils/glance_db/glance_conf_options.py
"""

import io
import json
import os
import sys
import warnings

warnings.simplefilter("ignore")

from oslo_config import cfg, types  # noqa: E402
from oslo_log import log as logging  # noqa: E402

from glance.cmd import manage  # noqa: E402
from glance.common import config  # noqa: E402

CONF = cfg.CONF


def register_like_glance_manage():
    CONF.register_cli_opt(manage.command_opt)
    logging.register_options(CONF)
    CONF.set_default(name="use_stderr", default=True)


def parse(files, config_dir, home=None):
    """CONF as glance-manage leaves it for ``--config-file F... [--config-dir D]``, HOME ``home``."""
    if home:
        os.environ["HOME"] = home
    args = []
    for path in files:
        args += ["--config-file", path]
    if config_dir is not None:
        args += ["--config-dir", config_dir]
    cfg_dirs = []  # glance-manage's main(): read only without --config-dir
    for prog in ["glance-api", "glance-manage"]:
        cfg_dirs.extend(cfg.find_config_dirs(project="glance", prog=prog))
    config.parse_args(args=args + ["db", "version"], default_config_files=[],
                      default_config_dirs=cfg_dirs)
    config.set_config_defaults()


def read(case):
    stderr, sys.stderr = sys.stderr, io.StringIO()
    os.environ.update(case.get("env", {}))
    try:
        parse(case["files"], case.get("dir"), case.get("home"))
        return {"url": CONF.database.connection}
    except BaseException as exc:  # noqa: B036 - argparse exits, recursion: all are answers
        # oslo.config writes why it exits (an invalid command-line option) to stderr.
        why = sys.stderr.getvalue().strip() if isinstance(exc, SystemExit) else str(exc)
        return {"error": "%s: %s" % (type(exc).__name__, why[:300])}
    finally:
        for name in case.get("env", {}):
            del os.environ[name]
        sys.stderr = stderr
        CONF.clear()  # not reset(): that would drop glance-manage's set_default()s


def _kind(opt_type):
    """The reader's name for a type; exact classes, as URI and the like check more than String."""
    if isinstance(opt_type, types.Integer):  # Port too
        return "int"
    kinds = {types.Boolean: "bool", types.Float: "float", types.String: "str"}
    return kinds.get(opt_type.__class__, opt_type.__class__.__name__.lower())


def options():
    """{group: {name: spec}}; DEFAULT for the options outside any group."""
    parse([], None)  # glance-manage's defaults are set after parsing
    table = {}
    for group_name in [None] + sorted(CONF._groups):
        opts = CONF._opts if group_name is None else CONF._groups[group_name]._opts
        group = table.setdefault(group_name or "DEFAULT", {})
        for name, info in sorted(opts.items()):
            opt = info["opt"]
            if isinstance(opt, cfg.SubCommandOpt):
                group[name] = {"kind": "subcommand"}
                continue
            typ = opt.type
            spec = {"kind": _kind(typ)}
            default = info["default"] if "default" in info else opt.default
            # Only scalar defaults can end up in a URL; the reader refuses the rest.
            if default is not None and spec["kind"] in ("str", "bool", "int", "float"):
                spec["default"] = default
            elif default is not None:
                spec["has_default"] = True
            for attr in ("min", "max"):
                if getattr(typ, attr, None) is not None:
                    spec[attr] = getattr(typ, attr)
            if getattr(typ, "choices", None):
                spec["choices"] = list(typ.choices)
            for attr in ("quotes", "ignore_case"):
                if getattr(typ, attr, False):
                    spec[attr] = True
            if getattr(typ, "max_length", 0):
                spec["max_length"] = typ.max_length
            if getattr(typ, "regex", None) is not None:
                spec["regex"] = typ.regex.pattern
            deprecated = [[d.group or group_name or "DEFAULT", d.name or opt.dest]
                          for d in opt.deprecated_opts if d.name or d.group]
            if deprecated:
                spec["deprecated"] = deprecated
            if opt.dest != name:
                spec["dest"] = opt.dest
            if isinstance(opt, cfg.MultiOpt) or opt.multi:
                spec["multi"] = True
            if any(cli_opt is opt for cli_opt, _group in CONF._all_cli_opts()):
                spec["cli"] = True
            group[name] = spec
    return table


MODULE = '''# -*- coding: utf-8 -*-
"""Glance 33's registered options, as glance-manage sees them: generated, do not edit.

Made by tests/functional/glance_conf_oracle.py (``module``) in the oracle
virtualenv; tests/functional/test_conf_parity.py fails when it drifts.
The reader needs them because oslo.config substitutes only registered options.
"""

from __future__ import annotations

OPTIONS = {
%s
}
'''


def module_text(table):
    lines = []
    for group in sorted(table):
        lines.append("    %r: {" % group)
        for name in sorted(table[group]):
            spec = table[group][name]
            line = "        %r: %r," % (name, spec)
            if len(line) <= 110:
                lines.append(line)
                continue
            lines.append("        %r: {" % name)  # hanging indents keep lines short
            for key, value in spec.items():
                prefix = "            %r: " % key
                text = repr(value)
                if isinstance(value, str) and len(text) > 80:
                    parts = [repr(value[at:at + 72]) for at in range(0, len(value), 72)]
                    text = "(%s)" % ("\n" + " " * (len(prefix) + 1)).join(parts)
                lines.append(prefix + text + ",")
            lines.append("        },")
        lines.append("    },")
    return MODULE % "\n".join(lines)


def main():
    register_like_glance_manage()
    if sys.argv[1:] == ["module"]:
        sys.stdout.write(module_text(options()))
    else:
        # The table first: a deprecated name met in a case registers one more option
        # (oslo.log's fatal_deprecations), as it would in that run of glance-manage.
        module = module_text(options())
        results = [read(case) for case in json.load(sys.stdin)]
        print(json.dumps({"results": results, "module": module}))


if __name__ == "__main__":
    main()
