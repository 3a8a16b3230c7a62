"""A viewer-events write ramp against a table under auto scaling: 5, 10, 20
and 40 events a second for 20 seconds each, then 40 seconds of nothing,
printing the table's write capacity after each step and the scaling
activities at the end.  Start Shoal with short windows first (README,
"Auto scaling"):

    python examples/autoscaling_ramp.py http://127.0.0.1:8010
"""

from __future__ import annotations

import sys
import time

import boto3
from botocore.config import Config

TABLE = "viewer_events_scaled"
STEPS = (5, 10, 20, 40, 0, 0)  # events a second, 20 seconds each
STEP_S = 20


def main(endpoint: str) -> None:
    options = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="any",
                   aws_secret_access_key="any")
    ddb = boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 10}), **options)
    scaling = boto3.client("application-autoscaling", **options)
    if TABLE in ddb.list_tables()["TableNames"]:
        ddb.delete_table(TableName=TABLE)
    ddb.create_table(TableName=TABLE, BillingMode="PROVISIONED",
                     KeySchema=[{"AttributeName": "user_id", "KeyType": "HASH"},
                                {"AttributeName": "ts", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "user_id", "AttributeType": "S"},
                                           {"AttributeName": "ts", "AttributeType": "N"}],
                     ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    target = dict(ServiceNamespace="dynamodb", ResourceId=f"table/{TABLE}",
                  ScalableDimension="dynamodb:table:WriteCapacityUnits")
    scaling.register_scalable_target(MinCapacity=5, MaxCapacity=200, **target)
    scaling.put_scaling_policy(PolicyName="events-writes", PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={
                                   "TargetValue": 70.0, "PredefinedMetricSpecification": {
                                       "PredefinedMetricType": "DynamoDBWriteCapacityUtilization"}}, **target)
    start, n = time.monotonic(), 0
    for rate in STEPS:
        until = time.monotonic() + STEP_S
        while time.monotonic() < until:
            if rate:
                ddb.put_item(TableName=TABLE, Item={"user_id": {"S": f"u{n % 50:08d}"}, "ts": {"N": str(n)},
                                                    "event_type": {"S": "play"}})
                n += 1
            time.sleep(1 / rate if rate else 0.5)
        units = ddb.describe_table(TableName=TABLE)["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"]
        print(f"{time.monotonic() - start:5.0f} s  load {rate:3d}/s  WriteCapacityUnits {units}", flush=True)
    for activity in reversed(scaling.describe_scaling_activities(ServiceNamespace="dynamodb",
                                                                 ResourceId=f"table/{TABLE}")["ScalingActivities"]):
        print(activity["Description"], "-", activity["Cause"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
