"""S3 client libraries compared on the job Cairn gives them: stream one object up as a multipart upload
and stream it back down, in bounded memory.

Each client runs in its own fresh Python process, so its peak RSS (``ru_maxrss``) is its own:
  - obstore: ``open_writer_async`` (8 MiB buffer) up, ``get_async(...).stream()`` down;
  - aiobotocore: CreateMultipartUpload + UploadPart (8 MiB parts, one in flight while the next fills,
    as the Cairn adapter does) + CompleteMultipartUpload up, a streamed GetObject down.
The bytes are generated in 1 MiB chunks (the size Cairn's engine hands to a blob writer), never held whole.

obstore is not a Cairn dependency: ``.venv/bin/pip install obstore`` first. Needs an S3 endpoint and an
existing bucket, from the usual variables::

    AWS_ENDPOINT_URL=http://127.0.0.1:8333 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \\
        .venv/bin/python bench/s3_client_bench.py --bucket bench [--mib 256] [--runs 3]

A local SeaweedFS: ``weed mini -dir=DIR -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config=FILE -admin.ui=false``
(tests/conftest.py starts one with its config file). MB/s means 10^6 bytes per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CHUNK = 1 << 20
PART = 8 << 20
CLIENTS = ("obstore", "aiobotocore")


def _chunks(total: int) -> list[bytes]:
    """One reusable 1 MiB chunk, yielded ``total / CHUNK`` times by the callers."""
    return [os.urandom(CHUNK)] * (total // CHUNK)


async def _obstore_run(bucket: str, key: str, total: int) -> tuple[float, float]:
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        bucket,
        endpoint=os.environ["AWS_ENDPOINT_URL"],
        region=os.environ.get("AWS_REGION", "us-east-1"),
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        client_options={"allow_http": True, "timeout": "300s"},
    )
    started = time.perf_counter()
    async with obstore.open_writer_async(store, key, buffer_size=PART, max_concurrency=2) as writer:
        for chunk in _chunks(total):
            await writer.write(chunk)
    up = time.perf_counter() - started
    started = time.perf_counter()
    received = 0
    result = await obstore.get_async(store, key)
    async for data in result.stream(min_chunk_size=CHUNK):
        received += len(data)
    down = time.perf_counter() - started
    assert received == total, (received, total)
    await obstore.delete_async(store, key)
    return up, down


async def _aiobotocore_run(bucket: str, key: str, total: int) -> tuple[float, float]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        config=AioConfig(request_checksum_calculation="when_required"),  # as the adapter
    ) as client:
        started = time.perf_counter()
        upload_id = (await client.create_multipart_upload(Bucket=bucket, Key=key))["UploadId"]
        parts: list[dict[str, object]] = []
        in_flight: asyncio.Task[dict[str, object]] | None = None

        async def send(number: int, body: bytes) -> dict[str, object]:
            response = await client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
            return {"PartNumber": number, "ETag": response["ETag"]}

        buffer = bytearray()
        number = 0
        for chunk in _chunks(total):
            buffer += chunk
            if len(buffer) >= PART:
                if in_flight is not None:
                    parts.append(await in_flight)
                number += 1
                in_flight = asyncio.create_task(send(number, bytes(buffer)))
                buffer = bytearray()
        if in_flight is not None:
            parts.append(await in_flight)
        if buffer:
            parts.append(await send(number + 1, bytes(buffer)))
        await client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        up = time.perf_counter() - started
        started = time.perf_counter()
        received = 0
        response = await client.get_object(Bucket=bucket, Key=key)
        async for data in response["Body"].iter_chunks(CHUNK):
            received += len(data)
        down = time.perf_counter() - started
        assert received == total, (received, total)
        await client.delete_object(Bucket=bucket, Key=key)
    return up, down


def _child(client: str, bucket: str, total: int, runs: int) -> None:
    run = _obstore_run if client == "obstore" else _aiobotocore_run
    times = [asyncio.run(run(bucket, f"bench/{client}-{i}", total)) for i in range(runs)]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"up": [t[0] for t in times], "down": [t[1] for t in times], "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    total = args.mib << 20
    if args.child:
        _child(args.child, args.bucket, total, args.runs)
        return
    print(f"{args.mib} MiB object, {args.runs} runs each, medians; endpoint {os.environ['AWS_ENDPOINT_URL']}")
    print(f"{'client':<12} {'upload MB/s':>12} {'download MB/s':>14} {'peak RSS MiB':>13}")
    for client in CLIENTS:
        command = [sys.executable, __file__, "--bucket", args.bucket, "--mib", str(args.mib)]
        command += ["--runs", str(args.runs), "--child", client]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        up = total / statistics.median(result["up"]) / 1e6
        down = total / statistics.median(result["down"]) / 1e6
        print(f"{client:<12} {up:>12.0f} {down:>14.0f} {result['peak_mib']:>13.0f}")


if __name__ == "__main__":
    main()
