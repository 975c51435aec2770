"""The emulator's S3 and SQL Server doors, driven by clients that are not
ours: boto3 (the AWS SDK for Python) and python-tds (a pure-Python TDS
client). Our own clients are lenient; these are the ones a user's scripts
would use. Run by tests/other_clients.rs with the emulator's environment
(`sqlflex-import emulator --print-env`), one full backup already at
`db.bak`, and the CA of the SQL Server door's certificate in `TDS_CA_FILE`
(another CA in `TDS_OTHER_CA_FILE`). Exits non-zero, naming the check, on the first mismatch."""

import os
import sys
import time
import urllib.request

import boto3
import botocore
import pytds
from botocore.config import Config

env = os.environ
bucket = env["S3_BUCKET"]


def s3_client(secret):
    return boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT"],
        aws_access_key_id=env["S3_ACCESS_KEY"],
        aws_secret_access_key=secret,
        region_name="eu01",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def error_code(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    return None


def check_s3():
    s3 = s3_client(env["S3_SECRET_KEY"])
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]], "ListBuckets"
    body = bytes(range(256)) * 400
    s3.put_object(Bucket=bucket, Key="other/a b+c.bak", Body=body)
    assert s3.head_object(Bucket=bucket, Key="other/a b+c.bak")["ContentLength"] == len(body), "HeadObject"
    part = s3.get_object(Bucket=bucket, Key="other/a b+c.bak", Range="bytes=10-19")
    assert part["ContentRange"] == f"bytes 10-19/{len(body)}", part["ContentRange"]
    assert part["Body"].read() == body[10:20], "GetObject with Range"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="other/", MaxKeys=1)
    assert [o["Key"] for o in listed["Contents"]] == ["other/a b+c.bak"], "ListObjectsV2"

    upload = s3.create_multipart_upload(Bucket=bucket, Key="other/big.bak")
    parts = []
    for n in (1, 2):
        chunk = bytes([n]) * (5 * 1024 * 1024)
        r = s3.upload_part(Bucket=bucket, Key="other/big.bak", PartNumber=n, UploadId=upload["UploadId"], Body=chunk)
        parts.append({"ETag": r["ETag"], "PartNumber": n})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="other/big.bak", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert s3.head_object(Bucket=bucket, Key="other/big.bak")["ContentLength"] == 10 * 1024 * 1024, "multipart"

    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "other/a b+c.bak"}, ExpiresIn=60)
    assert urllib.request.urlopen(url).read() == body, "presigned GET"

    assert error_code(lambda: s3.head_object(Bucket=bucket, Key="other/none.bak")) == "404", "HeadObject missing"
    assert error_code(lambda: s3.get_object(Bucket=bucket, Key="other/none.bak")) == "NoSuchKey", "GetObject missing"
    wrong = s3_client("not-the-secret")
    assert error_code(lambda: wrong.list_objects_v2(Bucket=bucket)) == "SignatureDoesNotMatch", "wrong secret"
    for key in ("other/a b+c.bak", "other/big.bak"):
        s3.delete_object(Bucket=bucket, Key=key)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="other/"), "DeleteObject"
    print("s3: boto3 ok")


def connect(password, **tls):
    return pytds.connect(
        server=tls.pop("server", env["SQL_HOST"]),
        port=int(env["SQL_PORT"]),
        user=env["SQL_USER"],
        password=password,
        database="master",
        autocommit=True,
        login_timeout=10,
        timeout=30,
        **tls,
    )


def server_error(call):
    try:
        call()
    except pytds.Error as e:
        return getattr(e, "number", None)
    return None


def state_of(cur, name):
    cur.execute("SELECT name, state_desc FROM sys.databases WHERE name = %s", (name,))
    rows = cur.fetchall()
    return rows[0][1] if rows else None


def check_tds():
    conn = connect(env["SQL_PASSWORD"])
    cur = conn.cursor()
    cur.execute("SELECT @@VERSION")
    assert "SQL Server" in cur.fetchone()[0], "@@VERSION"
    cur.execute("SELECT SERVERPROPERTY('ProductMajorVersion'), SUSER_SNAME()")
    assert cur.fetchone()[1] == env["SQL_USER"], "SUSER_SNAME()"
    cur.execute("SELECT name, state_desc, state, database_id, create_date FROM sys.databases")
    rows = cur.fetchall()
    assert [r[0] for r in rows][:4] == ["master", "tempdb", "model", "msdb"], rows
    assert all(hasattr(r[4], "year") for r in rows), "create_date is a datetime"
    cur.execute("SELECT DB_ID(%s)", ("master",))
    assert cur.fetchone()[0] == 1, "DB_ID"

    uri = f"s3://{env['S3_ENDPOINT'].split('://', 1)[1]}/{bucket}/db.bak"
    params = {
        "@database_name": "via_pytds",
        "@s3_url": uri,
        "@s3_access_key_id": env["S3_ACCESS_KEY"],
        "@s3_secret_key_id": env["S3_SECRET_KEY"],
    }
    # As a named RPC, the way client libraries call procedures.
    cur.callproc("[msdb].[stackit].[import_database]", params)
    assert cur.get_proc_return_status() == 0, "RPC return status"
    deadline = time.monotonic() + 30
    while state_of(cur, "via_pytds") != "ONLINE":
        assert time.monotonic() < deadline, f"via_pytds is {state_of(cur, 'via_pytds')}"
        time.sleep(0.1)
    # The name now exists: SQL Server's 1801, and the connection stays usable.
    again = server_error(lambda: cur.callproc("[msdb].[stackit].[import_database]", params))
    assert again == 1801, f"a second import: {again}"
    # As a batch with parameters (sp_executesql underneath).
    cur.execute(
        "EXEC [msdb].[stackit].[import_database] @database_name = %s, @s3_url = %s, "
        "@s3_access_key_id = %s, @s3_secret_key_id = %s",
        ("via_batch", uri, env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"]),
    )
    cur.execute("SELECT 1")
    assert cur.fetchone()[0] == 1, "usable after an EXEC"

    # What the checks after an import read and change, decoded by another
    # client: BIT, TINYINT and VARBINARY columns, USE, ALTER DATABASE.
    cur.execute(
        "SELECT name, is_read_only, user_access_desc, collation_name, compatibility_level "
        "FROM sys.databases WHERE name = %s",
        ("via_pytds",),
    )
    name, read_only, access, collation, level = cur.fetchone()
    assert (read_only, access) == (False, "MULTI_USER"), (read_only, access)
    assert collation == "SQL_Latin1_General_CP1_CI_AS", collation
    assert level == 130, f"the backup's level: {level}"
    cur.execute("SELECT name, type, principal_id, authentication_type_desc, sid "
                "FROM [via_pytds].sys.database_principals")
    principals = {r[0]: r for r in cur.fetchall()}
    assert principals["dbo"][2] == 1 and isinstance(principals["dbo"][4], bytes), principals
    assert principals["INFORMATION_SCHEMA"][4] is None, "a NULL sid"
    cur.execute("SELECT name, sid FROM sys.server_principals")
    assert all(isinstance(r[1], bytes) and len(r[1]) == 16 for r in cur.fetchall())
    cur.execute("ALTER DATABASE [via_pytds] SET COMPATIBILITY_LEVEL = 160")
    refused = server_error(
        lambda: cur.execute("ALTER DATABASE [via_pytds] SET COMPATIBILITY_LEVEL = 90"))
    assert refused == 15048, f"a level 2022 does not offer: {refused}"
    cur.execute("SELECT compatibility_level FROM sys.databases WHERE name = %s", ("via_pytds",))
    assert cur.fetchone()[0] == 160
    cur.execute("DBCC CHECKDB ([via_pytds]) WITH NO_INFOMSGS")
    conn.close()

    refused = server_error(lambda: connect("not-the-password"))
    assert refused == 18456, f"a wrong password: {refused}"
    print("tds: python-tds ok")


def check_tds_tls():
    # The certificate names localhost; python-tds checks the name itself.
    for login_only in (False, True):
        conn = connect(
            env["SQL_PASSWORD"], server="localhost", cafile=env["TDS_CA_FILE"], enc_login_only=login_only
        )
        cur = conn.cursor()
        cur.execute("SELECT SERVERPROPERTY('ProductMajorVersion'), SUSER_SNAME()")
        assert cur.fetchone()[1] == env["SQL_USER"], f"SUSER_SNAME() in TLS, login only: {login_only}"
        cur.execute("SELECT name FROM sys.databases WHERE name = %s", ("via_pytds",))
        assert cur.fetchall() == [("via_pytds",)], "a query after the login"
        conn.close()
    try:
        connect(env["SQL_PASSWORD"], server="localhost", cafile=env["TDS_OTHER_CA_FILE"])
    except Exception as e:
        assert "certificate verify failed" in str(e) or "SSL" in type(e).__name__, repr(e)
    else:
        raise AssertionError("a certificate another CA signed was accepted")
    print("tds in TLS: python-tds ok")


check_s3()
check_tds()
check_tds_tls()
sys.exit(0)
