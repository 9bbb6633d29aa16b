"""Normalised, deterministic schema dump of a Glance database.

Used twice: to record what real Glance produces (the golden files under
``tests/parity/golden``) and, in our tests, to dump what our own engine
produces, so the two can be compared with plain ``==``.

Only genuine noise is normalised away: ordering of unordered things,
whitespace, redundant outer parentheses around expressions, and differences
between drivers (pymysql; psycopg2 / psycopg 3) or SQLAlchemy releases
(2.0 / 2.1).  Everything else is kept engine-specific on purpose.

Depends on SQLAlchemy only.  Usage::

    python tests/parity/schema_dump.py URL       # prints JSON
    from schema_dump import dump; dump(url_or_engine) -> dict
"""

import json
import re
import sys

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["dump", "main"]

ALEMBIC_TABLE = "alembic_version"

# Index / constraint dialect options that carry schema meaning.  Anything
# else SQLAlchemy may report (and which differs between its releases) is
# ignored.  Empty / False values are dropped too.
_KEPT_DIALECT_OPTIONS = {
    "mysql_length",
    "mysql_prefix",
    "mysql_using",
    "mysql_with_parser",
    "postgresql_using",
    "postgresql_where",
    "postgresql_include",
    "postgresql_ops",
    "postgresql_with",
    "postgresql_tablespace",
    "postgresql_nulls_not_distinct",
    "sqlite_where",
}


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def _text(value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    return value


def _body(text):
    """A trigger body without its SQL comments (prose, not schema), whitespace collapsed."""
    if text is None:
        return None
    return _collapse(re.sub(r"--[^\n]*", " ", str(_text(text))))


def _collapse(text):
    """Collapse runs of whitespace into one space and trim."""
    if text is None:
        return None
    return re.sub(r"\s+", " ", str(_text(text))).strip()


def _outer_parens_balanced(text):
    """True if text is '( ... )' and the first '(' closes at the very end."""
    if len(text) < 2 or text[0] != "(" or text[-1] != ")":
        return False
    depth = 0
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in ("'", '"', "`"):
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False
    return depth == 0


def _strip_parens(text):
    if text is None:
        return None
    text = _collapse(text)
    while _outer_parens_balanced(text):
        text = text[1:-1].strip()
    return text


def _jsonable(value):
    value = _text(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(),
                                                        key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if hasattr(value, "compile"):  # a SQL expression
        try:
            return _collapse(str(value))
        except Exception:  # pragma: no cover - defensive
            pass
    return _collapse(str(value))


def _sort_key(item):
    name = item.get("name")
    return (name is None, name or "", json.dumps(item, sort_keys=True))


def _dialect_options(opts):
    out = {}
    for key, value in (opts or {}).items():
        if key not in _KEPT_DIALECT_OPTIONS:
            continue
        if value in (None, False, "", [], {}, ()):
            continue
        if key == "postgresql_using" and value == "btree":
            continue  # the default access method
        if key.endswith("_where"):
            value = _strip_parens(str(value))
        out[key] = _jsonable(value)
    return out


def _compile_type(type_, dialect):
    try:
        text = type_.compile(dialect=dialect)
    except Exception:
        text = repr(type_)
    return _collapse(text)


# --------------------------------------------------------------------------
# per-engine extras
# --------------------------------------------------------------------------

def _mysql_table_info(conn):
    rows = conn.execute(sa.text(
        "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION, ROW_FORMAT "
        "FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"))
    return {_text(r[0]): {"engine": _text(r[1]), "collation": _text(r[2]),
                          "row_format": _text(r[3])} for r in rows}


def _mysql_column_info(conn):
    rows = conn.execute(sa.text(
        "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME, "
        "EXTRA FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE()"))
    out = {}
    for r in rows:
        out[(_text(r[0]), _text(r[1]))] = {
            "charset": _text(r[2]),
            "collation": _text(r[3]),
            "extra": (_text(r[4]) or "").strip().lower(),
        }
    return out


def _mysql_triggers(conn):
    rows = conn.execute(sa.text(
        "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, "
        "EVENT_MANIPULATION, ACTION_STATEMENT, ACTION_ORIENTATION, SQL_MODE "
        "FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = DATABASE()"))
    out = {}
    for r in rows:
        out[_text(r[0])] = {
            "table": _text(r[1]),
            "timing": _text(r[2]),
            "event": _text(r[3]),
            "orientation": _text(r[5]),
            "body": _body(r[4]),
            "sql_mode": _text(r[6]),
        }
    return out


def _sqlite_table_sql(conn):
    rows = conn.execute(sa.text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    return {_text(r[0]): _text(r[1]) or "" for r in rows}


def _sqlite_triggers(conn):
    rows = conn.execute(sa.text(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"))
    return {_text(r[0]): {"table": _text(r[1]), "sql": _collapse(r[2])}
            for r in rows}


def _sqlite_autoincrement_columns(table_sql):
    """Columns declared 'INTEGER PRIMARY KEY AUTOINCREMENT' in CREATE TABLE."""
    cols = set()
    pattern = re.compile(
        r'(?:^|[(,])\s*["`\[]?(\w+)["`\]]?\s+INTEGER\s+'
        r'(?:CONSTRAINT\s+\S+\s+)?PRIMARY\s+KEY(?:\s+(?:ASC|DESC))?'
        r'(?:\s+ON\s+CONFLICT\s+\w+)?\s+AUTOINCREMENT', re.I)
    for m in pattern.finditer(table_sql):
        cols.add(m.group(1))
    return cols


def _pg_enums(conn):
    rows = conn.execute(sa.text(
        "SELECT n.nspname, t.typname, e.enumlabel "
        "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
        "JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "ORDER BY n.nspname, t.typname, e.enumsortorder"))
    out = {}
    for schema, name, label in rows:
        key = _text(name) if _text(schema) == "public" else "%s.%s" % (
            _text(schema), _text(name))
        out.setdefault(key, []).append(_text(label))
    return out


def _pg_sequences(conn):
    rows = conn.execute(sa.text(
        "SELECT n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'S' "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%'"))
    return sorted(_text(name) if _text(schema) == "public"
                  else "%s.%s" % (_text(schema), _text(name))
                  for schema, name in rows)


def _pg_triggers(conn):
    rows = conn.execute(sa.text(
        "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid) "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT t.tgisinternal AND n.nspname = current_schema()"))
    return {_text(r[0]): {"table": _text(r[1]), "definition": _collapse(r[2])}
            for r in rows}


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------

def _describe_table(insp, conn, dialect, table, extras):
    name = dialect.name
    mysql_cols = extras.get("mysql_columns", {})
    sqlite_auto = set()
    if name == "sqlite":
        sqlite_auto = _sqlite_autoincrement_columns(
            extras.get("sqlite_sql", {}).get(table, ""))

    columns = []
    for col in insp.get_columns(table):
        entry = {
            "name": col["name"],
            "type": _compile_type(col["type"], dialect),
            "nullable": bool(col["nullable"]),
            "default": None,
        }
        default = col.get("default")
        if default is not None:
            entry["default"] = _strip_parens(str(default))
        if col.get("comment"):
            entry["comment"] = _text(col["comment"])
        if col.get("computed"):
            computed = dict(col["computed"])
            computed["sqltext"] = _strip_parens(str(computed["sqltext"]))
            entry["computed"] = _jsonable(computed)

        auto = False
        if name in ("mysql", "mariadb"):
            info = mysql_cols.get((table, col["name"]), {})
            extra = info.get("extra", "")
            auto = "auto_increment" in extra
            rest = _collapse(extra.replace("auto_increment", ""))
            if rest:
                entry["extra"] = rest
            if info.get("charset"):
                entry["charset"] = info["charset"]
            if info.get("collation"):
                entry["collation"] = info["collation"]
        elif name == "postgresql":
            identity = col.get("identity")
            if identity:
                entry["identity"] = _jsonable(identity)
                auto = True
            if entry["default"] and entry["default"].lower().startswith(
                    "nextval("):
                auto = True
        elif name == "sqlite":
            auto = col["name"] in sqlite_auto
        if auto:
            entry["autoincrement"] = True
        columns.append(entry)

    pk = insp.get_pk_constraint(table) or {}
    primary_key = {"columns": list(pk.get("constrained_columns") or [])}
    if name == "postgresql":
        primary_key["name"] = pk.get("name")

    indexes = []
    for ix in insp.get_indexes(table):
        item = {
            "name": ix.get("name"),
            "columns": list(ix.get("column_names") or []),
            "unique": bool(ix.get("unique")),
        }
        if ix.get("expressions") and any(
                c is None for c in ix.get("column_names") or []):
            item["expressions"] = [_strip_parens(str(e))
                                   for e in ix["expressions"]]
        if ix.get("column_sorting"):
            item["column_sorting"] = _jsonable(ix["column_sorting"])
        opts = _dialect_options(ix.get("dialect_options"))
        if opts:
            item["dialect_options"] = opts
        indexes.append(item)
    indexes.sort(key=_sort_key)

    uniques = []
    for uc in insp.get_unique_constraints(table):
        item = {"name": uc.get("name"),
                "columns": list(uc.get("column_names") or [])}
        opts = _dialect_options(uc.get("dialect_options"))
        if opts:
            item["dialect_options"] = opts
        uniques.append(item)
    uniques.sort(key=_sort_key)

    fks = []
    for fk in insp.get_foreign_keys(table):
        item = {
            "name": fk.get("name"),
            "columns": list(fk.get("constrained_columns") or []),
            "referred_table": fk.get("referred_table"),
            "referred_columns": list(fk.get("referred_columns") or []),
        }
        if fk.get("referred_schema"):
            item["referred_schema"] = fk["referred_schema"]
        for key, value in sorted((fk.get("options") or {}).items()):
            if value is None or value is False:
                continue
            if isinstance(value, str):
                value = value.upper()
            item[key] = _jsonable(value)
        fks.append(item)
    fks.sort(key=_sort_key)

    checks = []
    try:
        reflected = insp.get_check_constraints(table)
    except NotImplementedError:  # pragma: no cover - all three implement it
        reflected = []
    for ck in reflected:
        checks.append({"name": ck.get("name"),
                       "sqltext": _strip_parens(str(ck.get("sqltext")))})
    checks.sort(key=_sort_key)

    desc = {
        "columns": columns,
        "primary_key": primary_key,
        "indexes": indexes,
        "unique_constraints": uniques,
        "foreign_keys": fks,
        "check_constraints": checks,
    }
    if name in ("mysql", "mariadb"):
        info = extras.get("mysql_tables", {}).get(table, {})
        desc["engine"] = info.get("engine")
        desc["collation"] = info.get("collation")
        desc["row_format"] = info.get("row_format")
    return desc


def _alembic_rows(conn, table_names):
    if ALEMBIC_TABLE not in table_names:
        return []
    rows = conn.execute(sa.text("SELECT version_num FROM %s" % ALEMBIC_TABLE))
    return sorted(_text(r[0]) for r in rows)


def _dump_connection(conn):
    dialect = conn.dialect
    name = dialect.name
    insp = sa.inspect(conn)
    table_names = set(insp.get_table_names())

    extras = {}
    if name in ("mysql", "mariadb"):
        extras["mysql_tables"] = _mysql_table_info(conn)
        extras["mysql_columns"] = _mysql_column_info(conn)
    elif name == "sqlite":
        extras["sqlite_sql"] = _sqlite_table_sql(conn)

    result = {
        "dialect": "mysql" if name == "mariadb" else name,
        "alembic_version": _alembic_rows(conn, table_names),
        "alembic_version_table": None,
        "tables": {},
        "views": {},
        "triggers": {},
    }
    for table in sorted(table_names):
        desc = _describe_table(insp, conn, dialect, table, extras)
        if table == ALEMBIC_TABLE:
            result["alembic_version_table"] = desc
        else:
            result["tables"][table] = desc

    for view in sorted(insp.get_view_names()):
        try:
            definition = insp.get_view_definition(view)
        except Exception:  # pragma: no cover - defensive
            definition = None
        result["views"][view] = _collapse(definition)

    if name in ("mysql", "mariadb"):
        result["triggers"] = _mysql_triggers(conn)
    elif name == "sqlite":
        result["triggers"] = _sqlite_triggers(conn)
    elif name == "postgresql":
        result["triggers"] = _pg_triggers(conn)
        result["enums"] = _pg_enums(conn)
        result["sequences"] = _pg_sequences(conn)
    return _jsonable(result)


def dump(url_or_engine):
    """Return a JSON-serialisable, normalised description of the database.

    ``url_or_engine`` is a SQLAlchemy URL (string or URL object), an Engine or
    a Connection.
    """
    if isinstance(url_or_engine, sa.engine.Connection):
        return _dump_connection(url_or_engine)
    own = not isinstance(url_or_engine, Engine)
    engine = sa.create_engine(url_or_engine) if own else url_or_engine
    try:
        with engine.connect() as conn:
            result = _dump_connection(conn)
            conn.rollback()
        return result
    finally:
        if own:
            engine.dispose()


def to_json(data):
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: schema_dump.py SQLALCHEMY_URL\n")
        return 2
    sys.stdout.write(to_json(dump(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
