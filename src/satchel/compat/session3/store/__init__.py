"""Session3's stores, each backed by a satchel store: ``DirectorySessionStore`` (files),
``ShelveSessionStore`` (SQLite), ``MySQLSessionStore``, ``PostgresSessionStore`` and
``VolatileSessionStore`` (memory)."""
