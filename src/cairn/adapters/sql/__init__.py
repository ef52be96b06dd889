"""Rows in SQL: ``engine`` (the database, its runners and migrations), ``schema`` (the tables), and one
module per aggregate implementing its port: ``objects``, ``sessions``, ``keys``, ``jobs``."""
