"""
Scripts that start more database servers on this machine, for the tests of
``accounts`` beyond one server: a three-node MariaDB Galera cluster
(``galera``) and a PostgreSQL streaming standby (``standby``); ``harness``
is the Django side (aliases, routers, worker threads).
"""
