"""Create (or bring into line) the artifact bucket: versioning on, so an overwritten or deleted object can be
recovered; the training scratch prefix (`_scratch/`, Ray Train checkpoints of runs in progress) expiring
after a week; old versions of everything else kept for 90 days; plain-HTTP access denied where the
endpoint is HTTPS. Idempotent. Credentials come from the environment (AWS_* variables or a profile).

    python bard_pipeline/infra/s3/configure_bucket.py --bucket bard-artifacts [--endpoint-url http://127.0.0.1:9000]
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

SCRATCH_DAYS, NONCURRENT_DAYS = 7, 90


def lifecycle() -> dict[str, Any]:
    return {
        "Rules": [
            {"ID": "expire-training-scratch", "Status": "Enabled", "Filter": {"Prefix": "_scratch/"},
             "Expiration": {"Days": SCRATCH_DAYS}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
            {"ID": "keep-old-versions-90-days", "Status": "Enabled", "Filter": {"Prefix": ""},
             "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_DAYS}},
        ]
    }  # fmt: skip


def tls_only_policy(bucket: str) -> dict[str, Any]:
    arn = f"arn:aws:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        ],
    }  # fmt: skip


def configure(bucket: str, endpoint_url: str | None) -> dict[str, Any]:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    try:
        s3.head_bucket(Bucket=bucket)
        created = False
    except ClientError:
        s3.create_bucket(Bucket=bucket)
        created = True
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=lifecycle())
    secure = endpoint_url is None or endpoint_url.startswith("https://")
    if secure:  # a plain-HTTP endpoint (a local MinIO) could not be reached at all under this policy
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket)))
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    return {"bucket": bucket, "created": created, "versioning": versioning, "tls_only_policy": secure}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL_S3"))
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    result = configure(args.bucket, args.endpoint_url)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
