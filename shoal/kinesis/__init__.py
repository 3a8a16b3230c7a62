"""Delivery of table changes to Kinesis Data Streams destinations.

DynamoDB's EnableKinesisStreamingDestination copies every item change of a
table into a Kinesis data stream.  Shoal hosts no Kinesis: it sends the
records to a Kinesis-compatible endpoint the operator names
(SHOAL_KINESIS_ENDPOINT, or ``shoal serve --kinesis-endpoint``).  Pieces:

* ``shoal.api.kinesis``: the four operations and the stored destinations.
* ``shoal.kinesis.records``: DynamoDB's Kinesis record format (pure).
* ``shoal.kinesis.client``: the Kinesis calls (DescribeStreamSummary,
  PutRecords) through botocore, signed with the credentials it finds.
* ``shoal.kinesis.delivery``: the background job and its delivery thread,
  a consumer of the change log with its own cursor per destination.
"""

from shoal.kinesis.delivery import KinesisDelivery, KinesisSettings

__all__ = ["KinesisDelivery", "KinesisSettings"]
