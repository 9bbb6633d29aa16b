# -*- coding: utf-8 -*-
"""Glance's config files, read with oslo.config's rules but without oslo.config.

What ``glance-manage --config-file F... [--config-dir D]`` takes as
``[database] connection``: the files in order, then ``D/*.conf`` in sorted order,
the latest file that sets a value winning (the last line within a file);
oslo.config's own line syntax (not configparser's); section names compared in
lower case except ``DEFAULT``; ``$name`` / ``${name}`` replaced by the value of a
registered option of the same group or of ``[DEFAULT]`` (``$group.name`` for
another group), ``$$`` and ``\\$`` for a literal ``$``, and anything else a
refusal, as Glance refuses it. An ``OS_GROUP__NAME`` environment variable wins over
the files, as in oslo.config. Pure Python: it runs inside Ansible's zip.
"""

from __future__ import annotations

import glob
import os
import string

from .errors import ConfigurationError
from .glance_conf_options import OPTIONS

_TRUE = ("true", "1", "on", "yes")
_FALSE = ("false", "0", "off", "no")
# oslo.config's Template is case-insensitive, with dots (``$group.option``).
_IDENTIFIER = r"[_a-z][\._a-z0-9]*"
# The option types whose values the reader converts; it refuses to substitute others.
_CONVERTED = ("str", "bool", "int", "float")


class GlanceConfig(object):
    """The database URL of a set of Glance config files, and the file (or environment variable) that set it."""

    def __init__(self, connection, source):
        self.connection = connection
        self.source = source


def read(config_file, config_dir=None):
    """A GlanceConfig for ``config_file`` (a list) then ``config_dir``, or a ConfigurationError.

    Without ``config_dir``, the directories glance-manage reads by default come
    first (so ``config_file`` overrides them), as with ``glance-manage --config-file``.
    """
    paths = []
    if not config_dir:
        for directory in default_config_dirs():
            paths += _conf_files(directory)
    for path in config_file or []:
        if os.path.isdir(path):
            raise ConfigurationError(
                "config_file %s is a directory; give it as config_dir, or the path of "
                "glance-api.conf as config_file." % path)
        if not os.path.isfile(path):
            raise ConfigurationError(
                "config_file %s does not exist. Give the path of glance-api.conf, "
                "or the database URL as connection." % path)
        paths.append(path)
    if config_dir:
        if not os.path.isdir(config_dir):
            raise ConfigurationError("config_dir %s is not a directory." % config_dir)
        paths += _conf_files(config_dir)
    files = _Files([_parse(path) for path in paths])
    files.check_command_line_options()
    try:
        connection, source = files.resolve("database", "connection")
    except ConfigurationError:
        if not _userinfo_has_dollar(files.lookup("database", "connection")[0]):
            raise
        # The refusal would name a variable that may be a piece of the password.
        raise ConfigurationError(
            "[database] connection has a $ in its user name or password, which oslo.config reads "
            "as a variable, and glance-manage cannot read it either. Write a literal $ as $$.") from None
    if not connection:
        raise ConfigurationError(_not_found(files, paths))
    return GlanceConfig(connection, source)


def default_config_dirs():
    """The ``*.conf.d`` directories glance-manage reads when given no --config-dir.

    For ``glance.conf.d``, ``glance-api.conf.d``, ``glance.conf.d`` again and
    ``glance-manage.conf.d`` (glance-manage asks for glance-api's, then its own),
    the first that exists in ~/.glance, ~, /etc/glance, /etc (and a snap's etc/glance).
    """
    bases = [os.path.abspath(os.path.expanduser(path)) for path in ("~/.glance", "~")]
    bases += ["/etc/glance", "/etc"]
    bases += [os.path.join(os.environ[var], "etc", "glance") for var in ("SNAP_COMMON", "SNAP")
              if os.environ.get(var)]
    found = []
    for name in ("glance", "glance-api", "glance", "glance-manage"):
        found += [path for path in (os.path.join(base, name + ".conf.d") for base in bases)
                  if os.path.exists(path)][:1]
    return found


def _conf_files(directory):
    # glob, as oslo.config does: hidden files are not read.
    return sorted(glob.glob(os.path.join(directory, "*.conf")))


# ---- the line syntax of oslo.config's iniparser

def _parse(path):
    """(path, {group: {key: [value, ...]}}) with group names normalized."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
    except OSError as exc:
        raise ConfigurationError("Cannot read %s: %s." % (path, exc.strerror or exc.__class__.__name__))
    except UnicodeDecodeError:
        raise ConfigurationError("Cannot read %s: it is not UTF-8 text." % path) from None
    sections = {}
    section = key = None
    value = []

    def fail(lineno, reason):
        # The line itself is not shown: it may hold a password.
        raise ConfigurationError(
            "Cannot read %s: line %d: %s (oslo.config, and so glance-manage, refuses it too)."
            % (path, lineno, reason))

    def assign(lineno):
        if section is None:
            fail(lineno, "a value before the first [section]")
        sections.setdefault(section, {}).setdefault(key, []).append("\n".join(value))

    for lineno, line in enumerate(lines, 1):
        line = line.rstrip()
        if not line:
            if key:  # a blank line ends a multi-line value
                assign(lineno)
                key = None
            continue
        if line[0] in " \t":
            if key is None:
                fail(lineno, "an indented line that continues no value")
            value.append(line.lstrip())
            continue
        if key:
            assign(lineno)
            key = None
        if line.startswith("["):
            if not line.endswith("]"):
                fail(lineno, "a section header without its closing ]")
            if len(line) <= 2:
                fail(lineno, "an empty section name")
            section = _group_name(line[1:-1])
            sections.setdefault(section, {})
        elif line[0] in "#;":
            continue
        else:
            key, value = _split(line, lineno, fail)
    if key:
        assign(len(lines))
    return path, sections


def _split(line, lineno, fail):
    """A ``key = value`` or ``key: value`` line: the first of ``=`` and ``:`` separates."""
    cut = min([at for at in (line.find("="), line.find(":")) if at >= 0] or [-1])
    if cut < 0:
        fail(lineno, "no '=' or ':' in a line that is not a section or a comment")
    key, value = line[:cut].strip(), line[cut + 1:].strip()
    if not key:
        fail(lineno, "an empty option name")
    if value and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]  # one pair of matching quotes around the value goes
    return key, [value]


def _group_name(name):
    return name if name == "DEFAULT" else name.lower()


# ---- values: the latest file wins, then substitution and type conversion

class _Template(string.Template):
    idpattern = _IDENTIFIER


class _Files(object):
    def __init__(self, parsed):
        self.newest_first = list(reversed(parsed))
        self.resolving = []

    def lookup(self, group, name, environment=True):
        """(raw value, where): ``OS_GROUP__NAME`` from the environment, which oslo.config
        prefers, else the latest file setting the option under any of its names."""
        variable = "OS_%s__%s" % (group.upper(), name.upper())
        if environment and variable in os.environ:
            return os.environ[variable], "environment variable " + variable
        spec = OPTIONS[group][name]
        names = [(group, spec.get("dest", name))] + [tuple(n) for n in spec.get("deprecated", ())]
        names = [(_group_name(g), n) for g, n in names]
        for path, sections in self.newest_first:
            for section, key in names:
                if key in sections.get(section, {}):
                    return sections[section][key][-1], path
        return None, None

    def check_command_line_options(self):
        """Refuse an invalid value of an option glance-manage also takes on its command
        line (``debug``, ``use_syslog``...): oslo.config checks those before anything else."""
        for group, options in sorted(OPTIONS.items()):
            for name, spec in sorted(options.items()):
                if spec.get("cli") and spec["kind"] in _CONVERTED \
                        and self.lookup(group, name, environment=False)[0] is not None:
                    self.resolve(group, name, environment=False)  # oslo.config checks the files' value

    def resolve(self, group, name, environment=True):
        """(value, where) of a registered option as oslo.config returns it; where None for a default."""
        if (group, name) in self.resolving:
            raise ConfigurationError(
                "%s refers to itself through $ substitutions; glance-manage cannot read it either. "
                "Write the value itself." % _where(self.resolving[0]))
        self.resolving.append((group, name))
        try:
            spec = OPTIONS[group][name]
            raw, path = self.lookup(group, name, environment)
            if raw is None:
                raw = spec.get("default")
            if raw is None:
                return None, path
            if isinstance(raw, str):
                raw = self.substitute(raw, group)
            return _convert(raw, spec, group, name), path
        finally:
            self.resolving.pop()

    def substitute(self, text, group):
        # oslo.config reads \$ as $$, then substitutes like string.Template.
        return _Template(text.replace("\\$", "$$")).safe_substitute(_Values(self, group))


class _Values(object):
    """The mapping oslo.config substitutes from: registered options only."""

    def __init__(self, files, group):
        self.files, self.group = files, group

    def __getitem__(self, key):
        group, name = self.group, key
        if "." in key:
            group, name = key.split(".", 1)
            if group not in OPTIONS or group == "DEFAULT":
                self.refuse(key)
        if name not in OPTIONS[group]:
            group, name = "DEFAULT", key  # oslo.config's second try: the whole name in DEFAULT
            if name not in OPTIONS[group]:
                self.refuse(key)
        spec = OPTIONS[group][name]
        kind = spec["kind"]
        if kind not in _CONVERTED:
            if kind != "subcommand" and not spec.get("cli") and not spec.get("has_default") \
                    and self.files.lookup(group, name)[0] is None:
                return ""  # unset, no default: oslo.config substitutes nothing
            # glance-manage would substitute the value's Python repr: refused here.
            raise ConfigurationError(
                "%s uses $%s, a %s option of Glance; write its value itself." % (
                    _where(self.files.resolving[0]), key, kind))
        value = self.files.resolve(group, name)[0]
        return "" if value is None else value

    def refuse(self, key):
        where = _where(self.files.resolving[0])
        raise ConfigurationError(
            "%s uses $%s, which is not one of Glance's options, so glance-manage cannot read it "
            "either (Glance defines no state_path, for one). Write the value itself, or $$ for "
            "a literal $." % (where, key))


def _userinfo_has_dollar(text):
    """Whether a ``$`` other than ``$$`` or ``\\$`` sits between ``://`` and the last ``@``
    (in the user name or password)."""
    start = (text or "").find("://")
    end = (text or "").rfind("@")
    return 0 <= start < end and "$" in text[start:end].replace("\\$", "").replace("$$", "")


def _where(option):
    group, name = option
    return "[%s] %s" % (group, name)


def _convert(value, spec, group, name):
    """The typed value, or the refusal oslo.config gives for an invalid one."""
    kind = spec["kind"]
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError(name)
        if kind in ("int", "float"):
            number = int if kind == "int" else float
            if not isinstance(value, number):
                if str(value).strip() == "":
                    return None
                value = number(value)
            if "choices" in spec and value not in spec["choices"]:
                raise ValueError(name)
            if value < spec.get("min", value) or value > spec.get("max", value):
                raise ValueError(name)
            return value
        return _string(str(value), spec, name)
    except ValueError:
        raise ConfigurationError(
            "The value of [%s] %s is not a valid %s value, so glance-manage refuses it too; "
            "fix it." % (group, name, kind))


def _string(value, spec, name):
    if spec.get("quotes") and value and value[0] in "\"'":
        if len(value) == 1 or value[-1] != value[0]:
            raise ValueError(name)
        value = value[1:-1]
    if spec.get("max_length") and len(value) > spec["max_length"]:
        raise ValueError(name)
    if "regex" in spec:
        import re  # no Glance option has one today
        if not re.search(spec["regex"], value, re.IGNORECASE if spec.get("ignore_case") else 0):
            raise ValueError(name)
    if "choices" in spec:
        choices = spec["choices"]
        if spec.get("ignore_case"):
            value_cmp, choices = value.lower(), [c.lower() for c in choices]
        else:
            value_cmp = value
        if value_cmp not in choices:
            raise ValueError(name)
    return value


def _not_found(files, paths):
    """Where the connection is not: naming the near misses oslo.config would not take."""
    misses = []
    for path, sections in files.newest_first:
        for section, keys in sorted(sections.items()):
            if section != "database" and keys.get("connection"):
                misses.append("[%s] connection in %s" % (section, path))
            if keys.get("sql_connection"):
                misses.append("[%s] sql_connection in %s" % (section, path))
    hint = ""
    if misses:
        hint = (" Found %s, which Glance does not read (only [database] connection)."
                % ", ".join(misses))
    return ("No [database] connection found in %s.%s Set it there, or give the database URL "
            "as connection." % (", ".join(paths), hint))
