# -*- coding: utf-8 -*-
"""Online DDL on MySQL/MariaDB: the hook on Alembic (alembic_hook.py) and the shadow copy (copier.py)."""
