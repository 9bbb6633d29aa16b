"""Stands in for a library that is not installed on the managed host (psycopg2, Glance's
PostgreSQL driver, which the collection uses where it is installed)."""
raise ImportError("No module named 'psycopg2'")
