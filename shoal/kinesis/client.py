"""The two Kinesis calls delivery makes, through botocore.

botocore speaks Kinesis's protocol (JSON 1.1, ``X-Amz-Target:
Kinesis_20131202.<Operation>``) and signs with SigV4 for service ``kinesis``
using the credentials its usual chain finds (environment, shared files,
instance roles).  Its own retries are off: delivery retries with its own
back-off, so a down endpoint never blocks the delivery thread for long.

Each call answers an outcome instead of raising, so the caller decides what
a failure means: ``Verdict`` for the stream check, ``Sent`` for PutRecords.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Error codes meaning the request reached Kinesis and was refused for good
#: (as opposed to throttling, server faults and network trouble: retried).
_REFUSED = frozenset({"ResourceNotFoundException", "AccessDeniedException", "InvalidArgumentException",
                      "ValidationException", "UnrecognizedClientException", "KMSAccessDeniedException",
                      "KMSNotFoundException", "KMSDisabledException", "KMSInvalidStateException"})


@dataclass
class Verdict:
    """What the endpoint says of a stream: ``exists`` (ACTIVE or UPDATING),
    ``refused`` (missing, not active, or access denied) or ``unreachable``
    (ask again later); ``detail`` says why, for the log."""

    state: str
    detail: str = ""


@dataclass
class Sent:
    """Outcome of one PutRecords: how many leading records were stored in
    order (all of them on success), and what went wrong otherwise."""

    delivered: int
    error: str | None = None


class KinesisEndpoint:
    """A Kinesis-compatible endpoint, with one botocore client per region."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._clients: dict[str, object] = {}

    def _client(self, region: str):
        client = self._clients.get(region)
        if client is None:
            import botocore.config
            import botocore.session

            config = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                            connect_timeout=self.timeout_s, read_timeout=self.timeout_s)
            client = botocore.session.get_session().create_client(
                "kinesis", region_name=region, endpoint_url=self.url, config=config)
            self._clients[region] = client
        return client

    def check_stream(self, region: str, name: str) -> Verdict:
        """Whether stream ``name`` exists and takes records (DescribeStreamSummary)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            summary = self._client(region).describe_stream_summary(StreamName=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _REFUSED or (400 <= status < 500 and "Throttl" not in code and "Limit" not in code):
                return Verdict("refused", f"{code}: {exc}")
            return Verdict("unreachable", f"{code}: {exc}")
        except (BotoCoreError, OSError) as exc:
            return Verdict("unreachable", f"{type(exc).__name__}: {exc}")
        status = summary["StreamDescriptionSummary"]["StreamStatus"]
        if status in ("ACTIVE", "UPDATING"):
            return Verdict("exists")
        return Verdict("refused", f"stream {name} is {status}")

    def put_records(self, region: str, name: str, records: list[tuple[bytes, str]]) -> Sent:
        """Send (data, partition key) records in one PutRecords."""
        from botocore.exceptions import BotoCoreError, ClientError

        entries = [{"Data": data, "PartitionKey": key} for data, key in records]
        try:
            answer = self._client(region).put_records(StreamName=name, Records=entries)
        except ClientError as exc:
            return Sent(0, f"{exc.response.get('Error', {}).get('Code', '')}: {exc}")
        except (BotoCoreError, OSError) as exc:
            return Sent(0, f"{type(exc).__name__}: {exc}")
        if not answer.get("FailedRecordCount"):
            return Sent(len(records))
        results = answer["Records"]
        first = next(i for i, result in enumerate(results) if result.get("ErrorCode"))
        return Sent(first, f"{results[first]['ErrorCode']}: {results[first].get('ErrorMessage', '')}")
