"""The storage contract suite: one module per aggregate, every test on SQLite and PostgreSQL."""
