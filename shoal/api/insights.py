"""Contributor insights: UpdateContributorInsights, DescribeContributorInsights, ListContributorInsights.

Being written; until then its operations are unknown to the router.
"""

OPERATIONS: dict = {}
