"""`quality migrate` on a Galera cluster and on a server writing a binary log
(a replication primary), set up as a DBA would (tests/cluster.py): refused up
front while the trust setting is off, resumed after a failure part-way, and
run at once on two nodes. The same scenarios run on the suite's own server in
tests/test_migrate.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from quality.migrate import available
from tests.cluster import Galera, ReplicaPair
from tests.conftest import execute, run_async
from tests.test_migrate import (
    migrate_once,
    refused_then_applied,
    schema_of,
    stopped_then_resumed,
    two_at_once,
)

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

# Reads on a node wait until it has applied what the cluster committed before them.
CAUSAL = "SET SESSION wsrep_sync_wait = 1"


def test_galera_migrate_is_refused_in_one_line_until_triggers_may_be_created(galera: Galera) -> None:
    with galera.app_database() as app:
        admin = dataclasses.replace(galera.writer.admin_url, database=app.name)
        refused_then_applied(app.url(galera.haproxy.port), admin, galera.set_trust_function_creators)
        for node in galera.nodes:  # the preflight's questions left every node in the cluster
            assert node.status("wsrep_cluster_size") == "3"


def test_binlog_server_migrate_is_refused_in_one_line_until_triggers_may_be_created(
    replica_pair: ReplicaPair,
) -> None:
    primary = replica_pair.primary

    def trust(on: bool) -> None:
        primary.query(f"SET GLOBAL log_bin_trust_function_creators = {int(on)}")

    with replica_pair.app_database() as app:
        try:
            admin = dataclasses.replace(primary.admin_url, database=app.name)
            refused_then_applied(app.url(primary.port), admin, trust)
        finally:
            trust(False)
        replica_pair.wait_caught_up()  # and the replica followed every migration
        replica = dataclasses.replace(replica_pair.replica.admin_url, database=app.name)
        assert schema_of(replica) == schema_of(admin)


def test_galera_migration_stopped_part_way_resumes_there(galera: Galera, tmp_path: Path) -> None:
    with galera.app_database() as fresh, galera.app_database() as app:
        galera.set_trust_function_creators(True)
        run_async(migrate_once(fresh.url(galera.nodes[2].port)))
        admin = dataclasses.replace(galera.writer.admin_url, database=app.name)
        stopped_then_resumed(app.url(galera.writer.port), admin, tmp_path)
        reference = dataclasses.replace(galera.writer.admin_url, database=fresh.name)
        assert schema_of(admin, CAUSAL) == schema_of(reference, CAUSAL)


def test_galera_migrations_started_at_once_on_two_nodes_apply_once(galera: Galera) -> None:
    with galera.app_database() as app:
        galera.set_trust_function_creators(True)
        admin = dataclasses.replace(galera.writer.admin_url, database=app.name)
        two_at_once(app.url(galera.nodes[0].port), app.url(galera.nodes[1].port), admin, CAUSAL)
        (versions,) = run_async(execute(dataclasses.replace(galera.nodes[2].admin_url, database=app.name),
                                        CAUSAL, "SELECT COUNT(*) FROM schema_migrations"))[1:]
        assert versions == [(len(available()),)]
