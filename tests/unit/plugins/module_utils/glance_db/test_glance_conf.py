"""glance-api.conf read as oslo.config reads it: the rules, one case each.

Every expectation here is what real glance-manage 33 (oslo.config 10.7) gives for
the same files; tests/functional/test_conf_parity.py compares a few hundred
generated files with it.
"""

from __future__ import annotations

import pytest

from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db import glance_conf
from ansible_collections.openstack_ops.glance.plugins.module_utils.glance_db.errors import ConfigurationError

# The file's text, and the URL Glance reads from it.
READS = {
    "dollar_escapes": ("[database]\nconnection = mysql://glance:pa$$w\\$rd@db/glance\n",
                       "mysql://glance:pa$w$rd@db/glance"),
    "group_names_ignore_case": ("[DATABASE]\nconnection = sqlite:////upper\n", "sqlite:////upper"),
    "last_line_wins": ("[database]\nconnection = sqlite:////1\n[DEFAULT]\n[database]\nconnection: sqlite:////2\n",
                       "sqlite:////2"),
    "registered_options_substitute": (
        "[DEFAULT]\nimage_cache_dir = /srv/$digest_algorithm\n[database]\nmax_pool_size = 07\n"
        "connection = sqlite:///${image_cache_dir}/$max_pool_size-$max_overflow-$debug-$database.backend\n",
        "sqlite:////srv/sha256/7-50-False-sqlalchemy"),
    "unset_string_option_is_empty": ("[database]\nconnection = sqlite:///$log_dir/g.db\n", "sqlite:////g.db"),
    "unset_options_of_other_types_too": (
        "[database]\nconnection = sqlite:////x$pydev_worker_debug_host/$enabled_backends/y\n", "sqlite:////x//y"),
    "matching_quotes_go": ("[database]\nconnection = 'sqlite:////q'\n", "sqlite:////q"),
    "odd_quotes_stay": ("[database]\nconnection = \"sqlite:////q'\n", "\"sqlite:////q'"),
    "comments_only_at_line_start": ("[database]\n# connection = sqlite:////no\nconnection = sqlite:////a # b\n",
                                    "sqlite:////a # b"),
    "indented_line_continues": ("[database]\nconnection =\n  sqlite:////m\n\t# more\n", "\nsqlite:////m\n# more"),
    "crlf_and_cr": ("[database]\r\nconnection = sqlite:////a\r[DEFAULT]\r\n", "sqlite:////a"),
}

# The file's text (on which glance-manage fails, or finds no connection), and our refusal.
REFUSES = {
    "state_path_is_not_glances": ("[database]\nconnection = sqlite:///$state_path/glance.sqlite\n",
                                  r"\[database\] connection uses \$state_path, which is not one of Glance's options"),
    "password_dollar_not_shown": ("[database]\nconnection = mysql://glance:s3c$ret@db/glance\n",
                                  r"^(?!.*ret).*a \$ in its user name or password.*Write a literal \$ as \$\$"),
    "password_dollar_through_an_option": (
        "[DEFAULT]\nimage_cache_dir = x$s3cret\n[database]\nconnection = mysql://glance:$image_cache_dir@db/g\n",
        r"^(?!.*s3cret).*a \$ in its user name or password"),
    "default_section_is_not_database": ("[DEFAULT]\nconnection = sqlite:////x\n",
                                        r"No \[database\] connection found in .*Found \[DEFAULT\] connection in"),
    "sql_connection_is_gone": ("[DEFAULT]\nsql_connection = sqlite:////x\n[sql]\nconnection = sqlite:////y\n",
                               r"No \[database\] connection found .*\[DEFAULT\] sql_connection.*\[sql\] connection"),
    "spaces_in_brackets_are_another_group": ("[ database ]\nconnection = sqlite:////x\n",
                                             r"No \[database\] connection"),
    "option_names_keep_their_case": ("[database]\nConnection = sqlite:////x\n", r"No \[database\] connection"),
    "default_options_see_only_default": (
        "[DEFAULT]\nimage_cache_dir = /srv/$backend\n[database]\nconnection = sqlite:///$image_cache_dir/g\n",
        r"\[database\] connection uses \$backend, which is not one of Glance's options"),
    "dotted_unknown_group": ("[database]\nconnection = sqlite:///$state_path.db\n", r"uses \$state_path\.db"),
    "orphan_indented_line": ("[database]\n\n  connection = sqlite:////x\n",
                             r"line 3: an indented line that continues no value"),
    "line_without_separator": ("[database]\nconnection\n", r"line 2: no '=' or ':'"),
    "value_before_section": ("connection = sqlite:////x\n", r"a value before the first \[section\]"),
    "command_line_options_checked": ("[DEFAULT]\ndebug = maybe\n[database]\nconnection = sqlite:////x\n",
                                     r"\[DEFAULT\] debug is not a valid bool value"),
    "invalid_value_substituted": ("[database]\nmax_pool_size = many\nconnection = sqlite:////$max_pool_size\n",
                                  r"\[database\] max_pool_size is not a valid int value"),
    "cycle": ("[database]\nbackend = x$connection\nconnection = sqlite:////$backend\n", r"refers to itself"),
    "group_is_not_a_value": ("[database]\nconnection = sqlite:////$profiler\n", r"uses \$profiler\b"),
    "empty_is_unset": ("[database]\nconnection =\n", r"No \[database\] connection"),
}


def _conf(tmp_path, text):
    conf = tmp_path / "glance-api.conf"
    conf.write_bytes(text.encode("utf-8"))
    return [str(conf)]


@pytest.mark.parametrize("name", sorted(READS))
def test_reads(tmp_path, name):
    text, url = READS[name]
    assert glance_conf.read(_conf(tmp_path, text)).connection == url


@pytest.mark.parametrize("name", sorted(REFUSES))
def test_refuses(tmp_path, name):
    text, pattern = REFUSES[name]
    with pytest.raises(ConfigurationError, match=pattern):
        glance_conf.read(_conf(tmp_path, text))


@pytest.mark.parametrize("text", ["[database]\nconnection = sqlite:////$default_log_levels\n",
                                  "[DEFAULT]\nenabled_backends = a:b\n[database]\nconnection = sqlite:////$enabled_backends\n"])
def test_lists_and_dicts_are_refused_not_guessed(tmp_path, text):
    """Glance would put the Python repr of the value in the URL; no sane URL holds one."""
    with pytest.raises(ConfigurationError, match=r"uses \$(default_log_levels|enabled_backends), a (list|dict) option"):
        glance_conf.read(_conf(tmp_path, text))


def test_files_then_directory_in_order_the_last_setting_wins(tmp_path):
    main = tmp_path / "glance-api.conf"
    main.write_text("[database]\nconnection = sqlite:////main\n")
    override = tmp_path / "override.conf"
    override.write_text("[DEFAULT]\nimage_cache_dir = /from-override\n")
    conf_d = tmp_path / "glance-api.conf.d"
    conf_d.mkdir()
    (conf_d / "20-db.conf").write_text("[database]\nconnection = sqlite://$image_cache_dir/20\n")
    (conf_d / "10-db.conf").write_text("[database]\nconnection = sqlite:////10\n")
    (conf_d / "30-other.conf").write_text("[DEFAULT]\nimage_cache_dir = /from-30\n")
    (conf_d / ".40-hidden.conf").write_text("[database]\nconnection = sqlite:////hidden\n")
    (conf_d / "50-db.conf.bak").write_text("[database]\nconnection = sqlite:////bak\n")
    read = glance_conf.read([str(main), str(override)], str(conf_d))
    # The value is 20's, substituted with the option as the last file sets it.
    assert (read.connection, read.source) == ("sqlite:///from-30/20", str(conf_d / "20-db.conf"))
    assert glance_conf.read([str(override), str(main)]).source == str(main)


def test_a_parse_error_shows_no_line(tmp_path):
    conf = tmp_path / "glance-api.conf"
    conf.write_text("[database]\nconnection = mysql://glance:secret@db/glance\n\n  secret-continued\n")
    with pytest.raises(ConfigurationError) as error:
        glance_conf.read([str(conf)])
    assert "secret" not in str(error.value) and "line 4" in str(error.value)


def test_glance_manage_default_directories_without_config_dir(tmp_path, monkeypatch):
    """glance-manage reads ~/.glance/, ~/, /etc/glance/, /etc/ *.conf.d when given no
    --config-dir, before its --config-file (which then wins); glance-manage.conf.d last."""
    home = tmp_path / "home"
    for where, text in ((".glance/glance-api.conf.d", "[database]\nconnection = sqlite:////api-d/$max_overflow\n"),
                        ("glance.conf.d", "[database]\nmax_overflow = 7\n"),
                        (".glance/glance-manage.conf.d", "[database]\nmax_overflow = 9\n")):
        (home / where).mkdir(parents=True)
        (home / where / "x.conf").write_text(text)
    monkeypatch.setenv("HOME", str(home))
    other = _conf(tmp_path, "[DEFAULT]\ndebug = false\n")
    with_connection = tmp_path / "with-connection.conf"
    with_connection.write_text("[database]\nconnection = sqlite:////main\n")
    read = glance_conf.read(other)
    assert (read.connection, read.source) == ("sqlite:////api-d/9", str(home / ".glance/glance-api.conf.d/x.conf"))
    assert glance_conf.read([str(with_connection)]).connection == "sqlite:////main"
    empty = tmp_path / "empty.d"
    empty.mkdir()
    with pytest.raises(ConfigurationError, match=r"No \[database\] connection"):
        glance_conf.read(other, str(empty))  # a config_dir replaces the default ones


def test_unreadable_files_are_named(tmp_path):
    latin = tmp_path / "latin1.conf"
    latin.write_bytes("[database]\nconnection = mysql://glance:d\xe9j\xe0@db/glance\n".encode("latin-1"))
    with pytest.raises(ConfigurationError, match=r"Cannot read .*latin1.conf: it is not UTF-8 text"):
        glance_conf.read([str(latin)])
    with pytest.raises(ConfigurationError, match=r"is a directory; give it as config_dir"):
        glance_conf.read([str(tmp_path)])
    with pytest.raises(ConfigurationError, match=r"config_file .*missing.conf does not exist"):
        glance_conf.read([str(tmp_path / "missing.conf")])


def test_environment_wins_over_the_files(tmp_path, monkeypatch):
    """oslo.config reads OS_<GROUP>__<OPTION> before the files (glance-manage does too)."""
    conf = _conf(tmp_path, "[database]\nconnection = sqlite:////file/$max_pool_size\n")
    monkeypatch.setenv("OS_DATABASE__MAX_POOL_SIZE", "12")
    assert glance_conf.read(conf).connection == "sqlite:////file/12"
    monkeypatch.setenv("OS_DATABASE__CONNECTION", "sqlite:////env")
    read = glance_conf.read(conf)
    assert (read.connection, read.source) == ("sqlite:////env", "environment variable OS_DATABASE__CONNECTION")
