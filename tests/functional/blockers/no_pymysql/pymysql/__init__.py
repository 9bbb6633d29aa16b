"""Stands in for a library that is not installed on the managed host."""
raise ImportError("No module named 'pymysql'")
