"""Fault 8 of the chaos campaign, secrets: fake credentials in the environment of runs that fail (a 401 from the
teacher's endpoint, a dead endpoint) and of one that works (store on S3, OpenAI engine) are found nowhere: not in
the bucket, the Ray logs, the cache, Prefect's files and API, nor the captured output. And the scanner can fail:
secrets planted in each kind of place are found."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bard_pipeline.chaos.secrets import (
    WRONG_KEY_ENV,
    Targets,
    fake_secrets,
    in_process,
    prefect_view,
    scan,
    secrets_trial,
)
from tests.conftest import free_port
from tests.support.flows import SMOKE
from tests.support.openai_server import FaultPlan, FaultServer


def test_fake_secrets_are_fresh_and_their_hits_name_them_without_their_value(tmp_path: Path) -> None:
    first, second = fake_secrets(), fake_secrets()
    assert set(first) >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "HF_TOKEN", WRONG_KEY_ENV}
    assert not set(first.values()) & set(second.values())
    assert first["AWS_ACCESS_KEY_ID"].startswith("AKIACHAOS") and len(first["AWS_SECRET_ACCESS_KEY"]) == 40
    (tmp_path / "clean.txt").write_text("nothing to see " * 1000, encoding="utf-8")
    assert scan([tmp_path], {"a text": "nor here"}, first) == []
    hits = scan([], {"a text": f"key={first['OPENAI_API_KEY']}"}, first)
    assert hits == ["a text: OPENAI_API_KEY"]
    assert all(value not in " ".join(hits) for value in first.values())


def test_the_scanner_finds_secrets_planted_in_parquet_logs_encoded_forms_and_sqlite(tmp_path: Path) -> None:
    s = fake_secrets()
    shard = tmp_path / "store" / "sample" / "abc" / "shards" / "0.parquet"
    shard.parent.mkdir(parents=True)
    table = pa.table({"error": [f"HTTP 401: Incorrect API key provided: {s['OPENAI_API_KEY']}"] * 50 + ["ok"] * 50})
    # Deflate's Huffman codes (no dictionary, no min/max statistics) leave no byte run of the key in the file.
    pq.write_table(table, shard, compression="gzip", use_dictionary=False, write_statistics=False)
    assert s["OPENAI_API_KEY"].encode() not in shard.read_bytes()  # only decoding finds it
    logs = tmp_path / "ray" / "session_x" / "logs"
    logs.mkdir(parents=True)
    secret_url = f"https://h/?X-Amz-Credential={s['AWS_SECRET_ACCESS_KEY']}".replace("/", "%2F").replace("+", "%2B")
    (logs / "worker.err").write_bytes(b"\x00\xffbinary junk " + secret_url.encode() + b"\n")
    basic = base64.b64encode(f"u:{s['HF_TOKEN']}".encode())  # misaligned: the token starts at byte 2
    (logs / "raylet.out").write_bytes(b"Authorization: Basic " + basic)
    db = sqlite3.connect(tmp_path / "prefect.db")
    db.execute("CREATE TABLE flow_run (parameters TEXT)")
    db.execute("INSERT INTO flow_run VALUES (?)", ("x" * 4090 + s["AWS_SESSION_TOKEN"] + "y" * 5000,))  # spans pages
    db.commit()
    db.close()
    stats: Counter[str] = Counter()
    hits = scan([tmp_path], {}, s, stats)
    where = {hit.rsplit(": ", 1)[1]: hit for hit in hits}
    assert set(where) == {
        "OPENAI_API_KEY",
        "AWS_SECRET_ACCESS_KEY (url)",
        "HF_TOKEN (base64@2)",
        "AWS_SESSION_TOKEN",
    }, hits
    assert "parquet values" in where["OPENAI_API_KEY"] and "sqlite values" in where["AWS_SESSION_TOKEN"]
    assert stats["files"] == 4 and stats["bytes"] > 10_000


@pytest.mark.usefixtures("prefect_api")
def test_the_scanner_finds_a_secret_the_prefect_api_shows() -> None:
    from prefect import flow, get_run_logger
    from prefect.artifacts import create_markdown_artifact

    s = fake_secrets()

    @flow(name="leaky")
    def leaky(note: str) -> None:
        get_run_logger().info("token %s", s["HF_TOKEN"])
        create_markdown_artifact(f"# key\n{s['OPENAI_API_KEY']}", key="leaky")

    state = leaky(note=s["AWS_ACCESS_KEY_ID"], return_state=True)
    run_id = str(state.state_details.flow_run_id)
    deadline = time.monotonic() + 30  # logs reach the API in batches
    while True:
        hits = scan([], prefect_view([run_id]), s)
        if any("HF_TOKEN" in h for h in hits) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    kinds = {(h.split(" ", 2)[1], h.rsplit(": ", 1)[1]) for h in hits}
    assert {("flow", "AWS_ACCESS_KEY_ID"), ("artifact", "OPENAI_API_KEY"), ("log", "HF_TOKEN")} <= kinds, hits


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_runs_that_fail_on_a_401_and_a_dead_endpoint_and_one_that_works_on_s3_leak_no_secret(
    s3_endpoint: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    secrets = fake_secrets()
    plan = FaultPlan(require_key=secrets["OPENAI_API_KEY"])
    t0 = time.monotonic()
    with FaultServer(plan, free_port()) as server:
        targets = Targets(s3_endpoint, "bard-test", server.url, f"http://127.0.0.1:{free_port()}/v1")
        report = secrets_trial(tmp_path, secrets, targets, in_process(SMOKE))
    out, err = capfd.readouterr()
    hits = report.hits + scan([], {"captured stdout": out, "captured stderr": err}, secrets)
    ids = [str(state.state_details.flow_run_id) for state in report.states.values()]
    kinds = Counter(key.split(" ")[1] for key in prefect_view(ids))
    with capfd.disabled():  # what was scanned, for the campaign's notes
        print(f"\nsecrets trial in {time.monotonic() - t0:.0f} s: {report.result.detail}; Prefect API objects "
              f"{dict(kinds)}; captured output {len(out) + len(err)} chars")  # fmt: skip
    assert hits == [], hits
    # The faults happened: the server refused the wrong key (its run failed at start-up, naming the variable),
    # the dead endpoint's run failed.
    assert plan.statuses[401] > 0 and plan.statuses[200] > 0, plan.statuses
    assert WRONG_KEY_ENV in (report.states["401"].message or ""), report.states["401"].message
    assert not report.states["dead endpoint"].is_completed()
    assert report.states["working"].is_completed(), report.states["working"].message
    compress = [json.loads(m.read_text()) for m in tmp_path.glob("s3/*/working/compress/*/manifest.json")]
    assert compress and compress[0]["stats"]["jobs"] > 0  # the working run's compress called the server too
    assert report.result.survived and report.result.secret_hits == 0, report.result.detail
    scanned = report.scanned
    assert scanned["s3 objects"]["files"] > 20 and scanned["ray session logs"]["files"] > 10
    assert scanned["prefect files"]["files"] >= 1 and scanned["prefect api"]["texts"] > 20
