"""ReplicaUpdates' Update: the UpdateTable requests a replica's region runs
(``control.member_update_requests``) and the entry every region shows
(``control.replica_set``)."""

from __future__ import annotations

from shoal.replication import control

PROVISIONED = {
    "TableName": "t", "BillingModeSummary": {"BillingMode": "PROVISIONED"},
    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 6},
    "GlobalSecondaryIndexes": [{"IndexName": "g", "ProvisionedThroughput": {"ReadCapacityUnits": 2,
                                                                            "WriteCapacityUnits": 3}}],
}
ON_DEMAND = {
    "TableName": "t", "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
    "OnDemandThroughput": {"MaxReadRequestUnits": -1, "MaxWriteRequestUnits": 50},
    "GlobalSecondaryIndexes": [{"IndexName": "g"}],
    "TableClassSummary": {"TableClass": "STANDARD"},
}


def test_provisioned_overrides_change_the_read_side_and_keep_the_write_side():
    spec = {"RegionName": "r", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 9},
            "GlobalSecondaryIndexes": [{"IndexName": "g", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 4}}],
            "TableClassOverride": "STANDARD_INFREQUENT_ACCESS"}
    assert control.member_update_requests(PROVISIONED, spec) == [
        {"ProvisionedThroughput": {"ReadCapacityUnits": 9, "WriteCapacityUnits": 6},
         "GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "g", "ProvisionedThroughput": {
             "ReadCapacityUnits": 4, "WriteCapacityUnits": 3}}}]},
        {"TableClass": "STANDARD_INFREQUENT_ACCESS"}]


def test_on_demand_overrides_set_the_read_maximum():
    spec = {"RegionName": "r", "OnDemandThroughputOverride": {"MaxReadRequestUnits": 100},
            "GlobalSecondaryIndexes": [{"IndexName": "g", "OnDemandThroughputOverride": {"MaxReadRequestUnits": 7}}]}
    assert control.member_update_requests(ON_DEMAND, spec) == [
        {"OnDemandThroughput": {"MaxReadRequestUnits": 100},
         "GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "g",
                                                     "OnDemandThroughput": {"MaxReadRequestUnits": 7}}}]}]


def test_what_is_already_as_asked_is_not_asked_again():
    spec = {"RegionName": "r", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 5},
            "GlobalSecondaryIndexes": [{"IndexName": "g", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 2}}],
            "TableClassOverride": "STANDARD", "KMSMasterKeyId": "alias/mine"}
    assert control.member_update_requests(PROVISIONED, spec) == []
    assert control.member_update_requests(ON_DEMAND, {"RegionName": "r", "TableClassOverride": "STANDARD"}) == []


def test_the_replica_set_carries_each_entrys_overrides_not_its_reachability():
    desc = {"TableStatus": "ACTIVE", "Replicas": [
        {"RegionName": "a", "ReplicaStatus": "REGION_DISABLED", "ReplicaInaccessibleDateTime": 1,
         "ProvisionedThroughputOverride": {"ReadCapacityUnits": 7},
         "ReplicaTableClassSummary": {"TableClass": "STANDARD_INFREQUENT_ACCESS"}},
        {"RegionName": "b", "ReplicaStatus": "ACTIVE"}]}
    assert control.replica_set(desc, "home") == [
        {"RegionName": "home", "ReplicaStatus": "ACTIVE"},
        {"RegionName": "a", "ReplicaStatus": "ACTIVE", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 7},
         "ReplicaTableClassSummary": {"TableClass": "STANDARD_INFREQUENT_ACCESS"}},
        {"RegionName": "b", "ReplicaStatus": "ACTIVE"}]


def test_index_overrides_are_merged_by_index_name():
    replicas = [{"RegionName": "r", "ReplicaStatus": "ACTIVE", "GlobalSecondaryIndexes": [
        {"IndexName": "g", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 2}},
        {"IndexName": "h", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 3}}]}]
    control._record_member_update(replicas, {"RegionName": "r", "GlobalSecondaryIndexes": [
        {"IndexName": "h", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 8}}]})
    assert replicas[0]["GlobalSecondaryIndexes"] == [
        {"IndexName": "g", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 2}},
        {"IndexName": "h", "ProvisionedThroughputOverride": {"ReadCapacityUnits": 8}}]


class _Table:
    def __init__(self, name: str, description: dict) -> None:
        self.name, self.description = name, description


WITH_WITNESS = {"TableName": "t", "TableStatus": "ACTIVE", "MultiRegionConsistency": "STRONG",
                "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
                "Replicas": [{"RegionName": "us-east-2", "ReplicaStatus": "ACTIVE"}],
                "GlobalTableWitnesses": [{"RegionName": "us-west-2", "WitnessStatus": "ACTIVE"}]}


def test_deleting_one_replica_of_an_mrsc_table_names_the_update_table_that_is_allowed():
    refusal = control.single_replica_deletion(_Table("t", WITH_WITNESS))
    assert (refusal.type_name, refusal.message) == (
        "ValidationException", "One or more parameter values were invalid: Table t is a replica of a multi-Region "
        "strong consistency global table: a single replica cannot be deleted. Remove us-east-2 and us-west-2 "
        "(witness) in one UpdateTable, leaving a single-Region table, then delete it")


def test_a_witness_has_no_replica_to_update():
    settings = control.Settings("us-east-1", {"us-east-2": "u", "us-west-2": "w"})
    try:
        control._check_member_updates(settings, _Table("t", WITH_WITNESS), [{"Update": {"RegionName": "us-west-2"}}])
    except control.ValidationException as exc:
        assert exc.message == "One or more parameter values were invalid: Replica does not exist in region us-west-2"
    else:
        raise AssertionError("a witness region was taken for a replica")
