"""The rig the cluster tests stand on (tests/cluster.py): a Galera cluster set up
as a DBA would, HAProxy sending everything to one writer, and a replica that
follows its primary."""

from __future__ import annotations

import pytest
from asyncmy.errors import MySQLError

from tests.cluster import Galera, ReplicaPair
from tests.conftest import execute, run_async

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]


def test_galera_nodes_form_one_cluster_set_up_as_a_dba_would(galera: Galera) -> None:
    for node in galera.nodes:
        assert node.status("wsrep_cluster_size") == "3"
        assert node.status("wsrep_local_state_comment") == "Synced"
        ((settings,),) = node.query(
            "SELECT @@binlog_format, @@innodb_autoinc_lock_mode, @@log_bin_trust_function_creators,"
            " @@wsrep_sst_method")
        assert settings == ("ROW", 2, 0, "rsync")
    assert galera.started_in < 120
    with galera.app_database() as app:
        (grants,) = galera.nodes[2].query(f"SHOW GRANTS FOR `{app.user}`@'127.0.0.1'")
        assert [line for (line,) in grants if "ON *.*" not in line] == [
            f"GRANT ALL PRIVILEGES ON `{app.name}`.* TO `{app.user}`@`127.0.0.1`"]
        assert next(line for (line,) in grants if "ON *.*" in line).startswith("GRANT USAGE ON *.*")
        # A row written through one node is read through another; HAProxy sends to the writer.
        run_async(execute(app.url(galera.nodes[1].port),
                          "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (7)"))
        (_, rows) = run_async(execute(app.url(galera.nodes[2].port),
                                      "SET SESSION wsrep_sync_wait = 1", "SELECT id FROM t"))
        assert rows == [(7,)]
        (via_haproxy,) = run_async(execute(app.url(galera.haproxy.port), "SELECT @@wsrep_node_name"))
        assert via_haproxy == [(galera.writer.name,)]


def test_replica_follows_its_primary_and_refuses_the_apps_writes(replica_pair: ReplicaPair) -> None:
    with replica_pair.app_database() as app:
        run_async(execute(app.url(replica_pair.primary.port),
                          "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (7)"))
        replica_pair.wait_caught_up()
        replica = app.url(replica_pair.replica.port)
        assert run_async(execute(replica, "SELECT id FROM t")) == [[(7,)]]
        with pytest.raises(MySQLError) as refused:
            run_async(execute(replica, "INSERT INTO t VALUES (8)"))
        assert refused.value.args[0] == 1290  # --read-only
        # By GTID: the replica's position is the primary's.
        ((written,),) = replica_pair.primary.query("SELECT @@gtid_binlog_pos")[0]
        ((applied,),) = replica_pair.replica.query("SELECT @@gtid_slave_pos")[0]
        assert applied == written != ""
