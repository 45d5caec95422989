"""The ArangoDB hot-backup API of `quipu serve`, driven by the real client
(pip python-arango 8.x) the way a user would drive it. Run by a Rust
integration test as

    python3 tests/python/arango_hot_backup.py

with QUIPU_URL, QUIPU_TOKEN (the admin token, used as root's password),
S3_ENDPOINT and S3_BUCKET (a moto_server with the bucket created,
credentials "testing", region us-east-1). Data goes in and out through
quipu's InfluxDB 3 API. Exits non-zero with a message on any failed check.
"""
import json
import os
import re
import sys
import time

import boto3
import requests
from arango import ArangoClient
from arango.exceptions import (ArangoServerError, BackupDeleteError, BackupDownloadError,
                               BackupGetError, BackupRestoreError, BackupUploadError)

URL = os.environ["QUIPU_URL"].rstrip("/")
TOKEN = os.environ["QUIPU_TOKEN"]
S3_ENDPOINT = os.environ["S3_ENDPOINT"]
S3_BUCKET = os.environ["S3_BUCKET"]
DB = "arango_test"
NOPE = "2000-01-01T00.00.00Z_nope"
REPO = f"moto:/{S3_BUCKET}/arango"
CONFIG = {"moto": {"type": "s3", "provider": "Other", "endpoint": S3_ENDPOINT,
                   "access_key_id": "testing", "secret_access_key": "testing",
                   "region": "us-east-1"}}
ROWS_A = ["cpu,host=a usage=1.5 1700000000000000000",
          "cpu,host=a usage=2.5 1700000010000000000",
          "cpu,host=b usage=3.25 1700000000000000000",
          "cpu,host=b usage=4 1700000010000000000",
          "cpu,host=c usage=0.5 1700000020000000000"]
ROWS_B = ["cpu,host=a usage=9.5 1700000100000000000",
          "cpu,host=d usage=7 1700000100000000000",
          "cpu,host=b usage=8.75 1700000110000000000"]
UUID_TAIL = re.compile(r"_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
TIMEOUT = 60


def step(msg):
    print(f"[arango] {msg}", flush=True)


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


# ---- raw HTTP: quipu's InfluxDB 3 API and hand-made ArangoDB requests ----

def raw(method, path, body=None, data=None, headers=None, auth=("root", TOKEN)):
    """A request with `requests`; body is JSON-encoded, data sent as is."""
    if body is not None:
        data = json.dumps(body)
    return requests.request(method, URL + path, data=data, auth=auth, timeout=30,
                            headers={"content-type": "application/json", **(headers or {})})


def check_error_body(status, body, what):
    """ArangoDB's error document: {"error":true,"code":N,"errorNum":int,"errorMessage":str}."""
    check(isinstance(body, dict), f"{what}: error body is not a JSON object: {body!r}")
    check(body.get("error") is True and body.get("code") == status
          and isinstance(body.get("errorNum"), int) and isinstance(body.get("errorMessage"), str),
          f"{what}: HTTP {status} body is not an ArangoDB error document: {body!r}")


def expect_raw(resp, status, what):
    check(resp.status_code == status, f"{what}: HTTP {resp.status_code}, expected {status}: {resp.text[:300]}")
    if status >= 400:
        try:
            body = resp.json()
        except ValueError:
            fail(f"{what}: HTTP {status} body is not JSON: {resp.text[:300]!r}")
        check_error_body(status, body, what)
        step(f"  {what}: HTTP {status} errorNum {body['errorNum']} ({body['errorMessage']})")
    else:
        step(f"  {what}: HTTP {status}")


def write_lp(lines):
    r = requests.post(f"{URL}/api/v3/write_lp", params={"db": DB}, data="\n".join(lines) + "\n",
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    check(200 <= r.status_code < 300, f"write_lp: HTTP {r.status_code}: {r.text[:300]}")


def query_rows(strict=True):
    """The rows of cpu, sorted; None on an error when not strict."""
    r = requests.get(f"{URL}/api/v3/query_sql", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
                     params={"db": DB, "q": "SELECT * FROM cpu ORDER BY time", "format": "jsonl"})
    if r.status_code != 200 and not strict:
        return None
    check(r.status_code == 200, f"query_sql: HTTP {r.status_code}: {r.text[:300]}")
    rows = [json.loads(line) for line in r.text.splitlines() if line.strip()]
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True))


def wait_rows(want, what):
    """The rows after a restore: polled a little, as ArangoDB's single server restores after answering."""
    deadline, got = time.monotonic() + 15, None
    while time.monotonic() < deadline:
        try:
            got = query_rows(strict=False)
        except requests.RequestException:
            got = None
        if got == want:
            step(f"  {what}: {len(got)} rows as expected")
            return
        time.sleep(0.2)
    fail(f"{what}: rows differ\n  got  {got}\n  want {want}")


# ---- python-arango helpers ----

def expect_error(exc_cls, status, fn, what):
    try:
        result = fn()
    except exc_cls as e:
        check(e.http_code == status, f"{what}: {type(e).__name__} HTTP {e.http_code}, expected {status}: {e}")
        check_error_body(status, e.response.body, what)
        step(f"  {what}: {type(e).__name__} HTTP {status} errorNum {e.error_code}")
        return e
    fail(f"{what}: succeeded with {result!r}, expected {exc_cls.__name__} HTTP {status}")


def sngl_status(progress):
    return ((progress.get("dbservers") or {}).get("SNGL") or {}).get("status")


def poll_transfer(poll, kind, tid):
    """Polls upload/download progress until a final state; returns the last record."""
    deadline, progress = time.monotonic() + TIMEOUT, None
    while time.monotonic() < deadline:
        progress = poll()
        if sngl_status(progress) in ("COMPLETED", "FAILED", "CANCELLED") or progress.get("cancelled") is True:
            return progress
        time.sleep(0.2)
    fail(f"{kind} {tid}: no final state within {TIMEOUT} s, last {progress!r}")


def wait_completed(poll, kind, tid):
    progress = poll_transfer(poll, kind, tid)
    if sngl_status(progress) != "COMPLETED":
        # python-arango's formatter drops Error/ErrorMessage: show the raw record.
        full = raw("POST", f"/_db/_system/_admin/backup/{kind}", body={f"{kind}Id": tid}).text
        fail(f"{kind} {tid} did not complete: {progress!r}\n  raw: {full[:500]}")
    step(f"  {kind} {tid} COMPLETED ({progress!r})")


def main():
    client = ArangoClient(hosts=URL)
    # verify=False (the default): verify=True would GET /_db/_system/_api/collection, which quipu lacks.
    db = client.db("_system", username="root", password=TOKEN, verify=False)
    backup = db.backup

    step("1. rows A, create(label='first')")
    write_lp(ROWS_A)
    rows_a = query_rows()
    check(len(rows_a) == len(ROWS_A), f"rows A: {len(rows_a)} rows read back, wrote {len(ROWS_A)}: {rows_a}")
    first = backup.create(label="first")
    step(f"  {first}")
    first_id = first.get("backup_id")
    check(isinstance(first_id, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\dZ_first", first_id),
          f"create: bad backup_id {first_id!r}")
    check(first.get("potentially_inconsistent") is False, f"create: potentially_inconsistent {first!r}")
    check(isinstance(first.get("size_in_bytes"), int) and first["size_in_bytes"] > 0, f"create: size_in_bytes {first!r}")
    check(isinstance(first.get("file_count"), int) and first["file_count"] >= 1, f"create: file_count (nrFiles) {first!r}")
    check(first.get("dbserver_count") == 1, f"create: dbserver_count (nrDBServers) {first!r}")
    check(isinstance(first.get("datetime"), str) and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", first["datetime"]),
          f"create: datetime {first!r}")

    step("2. create() without a label (python-arango sends {\"label\": null})")
    second_id = backup.create().get("backup_id")
    check(isinstance(second_id, str) and UUID_TAIL.search(second_id), f"create(): id {second_id!r} lacks _<uuid>")
    step(f"  {second_id}")

    step("3. get()")
    listing = backup.get()
    ids = sorted(listing.get("list", {}))
    check(first_id in ids and second_id in ids, f"get(): list keys {ids}, want {first_id} and {second_id}")
    for key, entry in listing["list"].items():
        check(entry.get("backup_id") == key, f"get(): entry under {key} has backup_id {entry.get('backup_id')!r}")
        check(isinstance(entry.get("datetime"), str), f"get(): entry {key} lacks datetime: {entry!r}")
    one = backup.get(backup_id=first_id)
    check(list(one.get("list", {})) == [first_id], f"get({first_id}): {one!r}")
    step(f"  {one['list'][first_id]}")
    expect_error(BackupGetError, 404, lambda: backup.get(backup_id=NOPE), "get(unknown id)")

    step(f"4. upload {first_id} to {REPO}")
    started = backup.upload(backup_id=first_id, repository=REPO, config=CONFIG)
    upload_id = started.get("upload_id")
    check(isinstance(upload_id, str) and upload_id, f"upload: no upload_id in {started!r}")
    wait_completed(lambda: backup.upload(upload_id=upload_id), "upload", upload_id)
    s3 = boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    key = f"arango/manifests/{first_id}.json"
    try:
        s3.head_object(Bucket=S3_BUCKET, Key=key)
    except Exception as e:  # botocore.exceptions.ClientError
        fail(f"s3://{S3_BUCKET}/{key} missing after the upload: {e}")
    step(f"  s3://{S3_BUCKET}/{key} exists")

    step(f"5. upload {second_id}, abort at once")
    upload2 = backup.upload(backup_id=second_id, repository=REPO, config=CONFIG)["upload_id"]
    try:
        aborted = backup.upload(upload_id=upload2, abort=True)
        final = poll_transfer(lambda: backup.upload(upload_id=upload2), "upload", upload2)
        check(final.get("cancelled") is True or sngl_status(final) == "CANCELLED",
              f"abort accepted ({aborted!r}) but the upload ended {final!r}")
        step(f"  outcome: cancelled ({final!r})")
    except BackupUploadError as e:
        check(e.http_code == 403, f"abort: HTTP {e.http_code}, expected 200 or 403 (finished): {e}")
        wait_completed(lambda: backup.upload(upload_id=upload2), "upload", upload2)
        step("  outcome: it had already finished, abort answered 403")
    expect_error(BackupUploadError, 404, lambda: backup.upload(upload_id="999999999", abort=True), "abort unknown upload")
    expect_error(BackupUploadError, 404, lambda: backup.upload(upload_id="999999999"), "progress of unknown upload")

    step(f"6. rows B, delete({first_id})")
    write_lp(ROWS_B)
    rows_ab = query_rows()
    check(len(rows_ab) == len(ROWS_A) + len(ROWS_B), f"rows A+B: {len(rows_ab)} rows: {rows_ab}")
    check(backup.delete(first_id) is True, "delete did not return True")
    expect_error(BackupGetError, 404, lambda: backup.get(backup_id=first_id), "get(deleted id)")
    expect_error(BackupDeleteError, 404, lambda: backup.delete(NOPE), "delete(unknown id)")

    step(f"7. download {first_id} from {REPO}")
    started = backup.download(backup_id=first_id, repository=REPO, config=CONFIG)
    download_id = started.get("download_id")
    check(isinstance(download_id, str) and download_id, f"download: no download_id in {started!r}")
    wait_completed(lambda: backup.download(download_id=download_id), "download", download_id)
    back = backup.get(backup_id=first_id)
    check(list(back.get("list", {})) == [first_id], f"get({first_id}) after the download: {back!r}")

    step(f"8. restore({first_id})")
    restored = backup.restore(first_id)
    step(f"  {restored}")
    previous = restored.get("previous")
    check(isinstance(previous, str) and previous, f"restore: no previous id in {restored!r}")
    check(restored.get("is_cluster") is False, f"restore: is_cluster (isCluster) {restored!r}")
    wait_rows(rows_a, "after restoring the first backup (rows A only)")
    check(previous in backup.get().get("list", {}), f"previous {previous!r} is not listed")
    step(f"  restore(previous={previous})")
    again = backup.restore(previous)
    check(isinstance(again.get("previous"), str), f"restore(previous): {again!r}")
    wait_rows(rows_ab, "after restoring previous (rows A+B)")

    step("9. error codes")
    expect_raw(raw("POST", "/_db/_system/_admin/backup/create", body={"label": 5}), 400, "create {label: 5}")
    expect_raw(raw("POST", "/_db/_system/_admin/backup/create", data="{not json"), 400, "create with a non-JSON body")
    expect_raw(raw("POST", "/_db/_system/_admin/backup/list", body={}, auth=("root", "wrong")), 401, "Basic, wrong password")
    expect_raw(raw("POST", "/_db/_system/_admin/backup/list", body={}, auth=None,
                   headers={"Authorization": "bearer wrong"}), 401, "bearer, wrong token")
    expect_raw(raw("POST", "/_db/_system/_admin/backup/list", body={}, auth=None), 401, "no Authorization")
    expect_raw(raw("POST", "/_db/_system/_admin/backup/list", body={}), 200, "Basic root:<token>")
    expect_raw(raw("POST", "/_db/_system/_admin/backup/list", body={}, auth=None,
                   headers={"Authorization": f"bearer {TOKEN}"}), 200, "lower-case bearer <token>")
    expect_error(BackupGetError, 401, client.db("_system", username="root", password="wrong").backup.get,
                 "python-arango, wrong password")
    su = client.db("_system", superuser_token=TOKEN).backup.get()  # sends "Authorization: bearer <token>"
    check(second_id in su.get("list", {}), f"python-arango superuser_token: {su!r}")
    expect_raw(raw("POST", "/_db/other/_admin/backup/list", body={}), 404, "database other than _system")
    expect_error(BackupRestoreError, 404, lambda: backup.restore(NOPE), "restore(unknown id)")
    expect_error(BackupUploadError, 404, lambda: backup.upload(backup_id=NOPE, repository=REPO, config=CONFIG),
                 "upload(unknown id)")
    expect_error(BackupUploadError, 400, lambda: backup.upload(backup_id=second_id, repository="nocolon",
                                                               config=CONFIG), "upload, repository without a colon")
    expect_error(BackupUploadError, 400, lambda: backup.upload(backup_id=second_id, repository="other:/x",
                                                               config=CONFIG), "upload, section not in config")
    expect_error(BackupDownloadError, 400, lambda: backup.download(backup_id=first_id, repository="nocolon",
                                                                   config=CONFIG), "download, repository without a colon")
    # The reference: list answers 405 to other methods; create, restore,
    # delete, upload and download answer 400 to any method but POST.
    expect_raw(raw("GET", "/_db/_system/_admin/backup/list"), 405, "GET list")
    expect_raw(raw("GET", "/_admin/backup/list"), 405, "GET list (no /_db prefix)")
    expect_raw(raw("GET", "/_db/_system/_admin/backup/create"), 400, "GET create")
    expect_raw(raw("PUT", "/_db/_system/_admin/backup/delete", body={"id": second_id}), 400, "PUT delete")
    step("OK: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except ArangoServerError as e:
        fail(f"unexpected {type(e).__name__}: {e}\n  {e.http_method.upper()} {e.url}\n  body {e.response.raw_body[:500]}")
    except requests.RequestException as e:
        fail(f"unexpected HTTP failure: {e}")
