"""Real InfluxDB clients against a quipu server, and the export read back
by pyarrow and duckdb. Driven by tests/it/python_clients.rs:

    clients_roundtrip.py write URL TOKEN   # influxdb3-python (v3) -> db py3, influxdb-client (v2) -> bucket py2
    clients_roundtrip.py check URL TOKEN   # after compaction: export both, compare with what was written

Exits non-zero with a message on any difference.
"""
import io
import json
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

BASE_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
STEP_NS = 600 * 10**9            # 10 minutes: 200 points span two UTC days
POINTS = 200
TABLE = "weather"


def expected():
    """(location, sensor or None, temp, count, ok, note, time_ns) per point."""
    rows = []
    for i in range(POINTS):
        sensor = None if i % 7 == 0 else f"s{i % 3}"
        rows.append((f"loc{i % 5}", sensor, i * 0.5 - 20.0, i - 50, i % 2 == 0, f"note {i} \"q\"", BASE_NS + i * STEP_NS))
    return sorted(rows, key=repr)


def points(point_class, precision):
    out = []
    for (location, sensor, temp, count, ok, note, t) in expected():
        p = point_class(TABLE).tag("location", location)
        if sensor is not None:
            p = p.tag("sensor", sensor)
        p = p.field("temp", temp).field("count", count).field("ok", ok).field("note", note).time(t, precision)
        out.append(p)
    return out


def write(url, token):
    from influxdb_client_3 import InfluxDBClient3, Point, WritePrecision

    with InfluxDBClient3(host=url, token=token, database="py3") as client:
        client.write(record=points(Point, WritePrecision.NS), write_precision=WritePrecision.NS)

    from influxdb_client import InfluxDBClient, Point as Point2, WritePrecision as WP2
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=url, token=token, org="any") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="py2", record=points(Point2, WP2.NS), write_precision=WP2.NS)


def get(url, token, path):
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as resp:
        return resp.status, resp.headers.get("content-type"), resp.read()


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def normalise(rows):
    return sorted(rows, key=repr)


def check(url, token):
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    want = expected()
    for db in ("py3", "py2"):
        _, _, body = get(url, token, f"/api/v3/export/windows?db={db}&table={TABLE}")
        windows = [w["window"] for w in json.loads(body)["windows"]]
        if windows != ["2024-01-01", "2024-01-02"]:
            fail(f"{db}: windows {windows}")
        status, ctype, body = get(url, token, f"/api/v3/export/window_data?db={db}&table={TABLE}")
        if status != 200 or ctype != "application/x-tar":
            fail(f"{db}: window_data answered {status} {ctype}")
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                names = tar.getnames()
                if names != [f"{TABLE}/2024-01-01.parquet", f"{TABLE}/2024-01-02.parquet"]:
                    fail(f"{db}: tar entries {names}")
                tar.extractall(tmp, filter="data")

            # pyarrow
            got = []
            for name in names:
                table = pq.read_table(Path(tmp) / name)
                schema = table.schema
                if schema.field("location").type != pa.dictionary(pa.int32(), pa.string()):
                    fail(f"{db}: location is {schema.field('location').type}")
                if schema.field("time").type != pa.timestamp("ns", tz="UTC"):
                    fail(f"{db}: time is {schema.field('time').type}")
                for name_, typ in (("temp", pa.float64()), ("count", pa.int64()), ("ok", pa.bool_()), ("note", pa.string())):
                    if schema.field(name_).type != typ:
                        fail(f"{db}: {name_} is {schema.field(name_).type}")
                cols = table.to_pydict()
                times = table.column("time").cast(pa.int64()).to_pylist()
                got += list(zip(cols["location"], cols["sensor"], cols["temp"], cols["count"], cols["ok"], cols["note"], times))
            if normalise(got) != want:
                fail(f"{db}: pyarrow rows differ; first got {normalise(got)[:2]}, want {want[:2]}")

            # duckdb
            con = duckdb.connect()
            rows = con.execute(
                "select location, sensor, temp, count, ok, note, epoch_ns(time) from read_parquet(?)",
                [str(Path(tmp) / TABLE / "*.parquet")],
            ).fetchall()
            if normalise(rows) != want:
                fail(f"{db}: duckdb rows differ; first got {normalise(rows)[:2]}, want {want[:2]}")
            types = dict(con.execute(
                "select column_name, column_type from (describe select * from read_parquet(?))",
                [str(Path(tmp) / TABLE / "*.parquet")],
            ).fetchall())
            # duckdb 2 keeps nanoseconds (TIMESTAMPTZ_NS); 1.x reads microseconds with the zone.
            if types.get("location") != "VARCHAR" or types.get("time") not in ("TIMESTAMPTZ_NS", "TIMESTAMP WITH TIME ZONE"):
                fail(f"{db}: duckdb types {types}")
    print(f"ok: {len(want)} points per client, equal in pyarrow and duckdb")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("write", "check"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2], sys.argv[3])
