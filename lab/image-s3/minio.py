#!/usr/bin/python3
"""Lab stand-in for the MinIO server (no MinIO image can be pulled in the lab).

It keeps MinIO's contract for what provision's cache_server role uses, as the lab's docker:dind
stand-in keeps dockerd's:
  minio server DATA_DIR --address :PORT [--certs-dir DIR]
  MINIO_ROOT_USER / MINIO_ROOT_PASSWORD: the only keys accepted, or read from the files named
  by MINIO_ROOT_USER_FILE / MINIO_ROOT_PASSWORD_FILE (MinIO's readFromSecret: a name relative to
  /run/secrets/ when that file exists, else the path itself; surrounding white space trimmed; a
  missing file is ignored). The lab's image sets the *_FILE defaults of MinIO's image.
  TLS when DIR holds public.crt and private.key (MinIO's file names), plain HTTP otherwise
  S3 path-style requests, AWS Signature V4 (header or presigned query): anything unsigned,
  signed with other keys or with a wrong signature is refused with 403
  buckets, objects (PUT/GET/HEAD/DELETE, listing) and the bucket lifecycle document.
It stores the lifecycle but expires nothing (the lab never waits days). Python's standard
library only, so the image is Debian's python3 and these files.
"""
import datetime
import hashlib
import hmac
import os
import ssl
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

sys.path.insert(0, "/usr/lib/minio-standin")
import sigv4  # noqa: E402


def read_from_secret(name):
    """MinIO's readFromSecret (cmd/common-main.go)."""
    path = os.path.join("/run/secrets/", name)
    if not os.path.isfile(path):
        path = name
    try:
        with open(path, "rb") as f:
            return f.read().decode().strip()
    except FileNotFoundError:
        return ""


def key(var, default):
    """VAR_FILE's content when it names a file with content, else VAR, else the default."""
    if os.environ.get(var + "_FILE"):
        value = read_from_secret(os.environ[var + "_FILE"])
        if value:
            return value
    return os.environ.get(var, default)


USER = key("MINIO_ROOT_USER", "minioadmin")
PASSWORD = key("MINIO_ROOT_PASSWORD", "minioadmin")
DATA = "/data"


def die(msg):
    print(f"minio (lab stand-in): {msg}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    if not argv or argv[0] != "server":
        die("usage: minio server DIR --address :PORT [--certs-dir DIR]")
    data, address, certs = None, ":9000", os.path.expanduser("~/.minio/certs")
    args = argv[1:]
    while args:
        a = args.pop(0)
        if a in ("--address", "--certs-dir", "--console-address"):
            if not args:
                die(f"{a} needs a value")
            v = args.pop(0)
            if a == "--address":
                address = v
            elif a == "--certs-dir":
                certs = v
        elif a.startswith("-"):
            die(f"unknown flag {a}")
        else:
            data = a
    if not data:
        die("no data directory")
    host, _, port = address.rpartition(":")
    return data, (host, int(port)), certs


def xml(code, body):
    return code, b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode()


def error(code, s3code, message):
    return xml(code, f"<Error><Code>{s3code}</Code><Message>{escape(message)}</Message></Error>")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("minio (lab stand-in): %s %s\n" % (self.address_string(), fmt % args))

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _refusal(self, path, query, body):
        """None when the request is signed with the root keys, else the error response."""
        headers = {k.lower(): v for k, v in self.headers.items()}
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        try:
            if "X-Amz-Signature" in q:
                cred, signed = q["X-Amz-Credential"], q["X-Amz-SignedHeaders"].split(";")
                amz_date, given, payload = q["X-Amz-Date"], q["X-Amz-Signature"], "UNSIGNED-PAYLOAD"
                start = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
                if datetime.datetime.now(datetime.timezone.utc) > start + datetime.timedelta(seconds=int(q["X-Amz-Expires"])):
                    return error(403, "AccessDenied", "Request has expired")
                drop = ("X-Amz-Signature",)
            else:
                auth = headers.get("authorization", "")
                if not auth.startswith(sigv4.ALGORITHM + " "):
                    return error(403, "AccessDenied", "Access Denied.")
                fields = dict(p.strip().split("=", 1) for p in auth[len(sigv4.ALGORITHM) + 1 :].split(","))
                cred, signed, given = fields["Credential"], fields["SignedHeaders"].split(";"), fields["Signature"]
                amz_date = headers.get("x-amz-date", "")
                payload = headers.get("x-amz-content-sha256") or sigv4.sha256_hex(body)
                if len(payload) == 64 and payload != sigv4.sha256_hex(body):
                    return error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match")
                drop = ()
            access, scope = cred.split("/", 1)
        except (KeyError, ValueError):
            return error(403, "AccessDenied", "Malformed signature.")
        if not hmac.compare_digest(access, USER):
            return error(403, "InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records.")
        want = sigv4.signature(PASSWORD, self.command, path, query, headers, signed, payload, amz_date, scope, drop)
        if not hmac.compare_digest(want, given):
            return error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
        return None

    def _handle(self):
        url = urllib.parse.urlsplit(self.path)
        body = self._body()
        refused = self._refusal(url.path, url.query, body)
        code, payload, ctype = (*refused, "application/xml") if refused else self._serve(url, body)
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _handle

    def _serve(self, url, body):
        parts = urllib.parse.unquote(url.path).lstrip("/").split("/", 1)
        bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        m = self.command
        x = "application/xml"
        if not bucket:
            names = sorted(b for b in os.listdir(DATA) if not b.startswith("."))
            items = "".join(f"<Bucket><Name>{escape(b)}</Name></Bucket>" for b in names)
            return (*xml(200, f"<ListAllMyBucketsResult><Buckets>{items}</Buckets></ListAllMyBucketsResult>"), x)
        bdir = os.path.join(DATA, bucket)
        if bucket.startswith(".") or "/" in bucket:
            return (*error(400, "InvalidBucketName", "The specified bucket is not valid."), x)
        if not key:
            if m == "PUT" and "lifecycle" not in q:
                if os.path.isdir(bdir):
                    return (*error(409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it."), x)
                os.makedirs(bdir)
                return 200, b"", x
            if not os.path.isdir(bdir):
                return (*error(404, "NoSuchBucket", "The specified bucket does not exist"), x)
            lc = os.path.join(DATA, ".lifecycle", bucket + ".xml")
            if "lifecycle" in q:
                if m == "PUT":
                    os.makedirs(os.path.dirname(lc), exist_ok=True)
                    with open(lc, "wb") as f:
                        f.write(body)
                    return 200, b"", x
                if m == "DELETE":
                    if os.path.exists(lc):
                        os.remove(lc)
                    return 204, b"", x
                if not os.path.exists(lc):
                    return (*error(404, "NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"), x)
                with open(lc, "rb") as f:
                    return 200, f.read(), x
            if m == "HEAD":
                return 200, b"", x
            keys = sorted(urllib.parse.unquote(n) for n in os.listdir(bdir))
            items = "".join(f"<Contents><Key>{escape(k)}</Key></Contents>" for k in keys if k.startswith(q.get("prefix", "")))
            return (*xml(200, f"<ListBucketResult><Name>{escape(bucket)}</Name>{items}</ListBucketResult>"), x)
        if not os.path.isdir(bdir):
            return (*error(404, "NoSuchBucket", "The specified bucket does not exist"), x)
        path = os.path.join(bdir, urllib.parse.quote(key, safe=""))
        if m == "PUT":
            with open(path + ".tmp", "wb") as f:
                f.write(body)
            os.replace(path + ".tmp", path)
            return 200, b"", x
        if not os.path.exists(path):
            return (*error(404, "NoSuchKey", "The specified key does not exist."), x)
        if m == "DELETE":
            os.remove(path)
            return 204, b"", x
        with open(path, "rb") as f:
            return 200, f.read(), "application/octet-stream"


def main():
    global DATA
    DATA, address, certs = parse_args(sys.argv[1:])
    os.makedirs(DATA, exist_ok=True)
    server = ThreadingHTTPServer(address, Handler)
    cert, key = os.path.join(certs, "public.crt"), os.path.join(certs, "private.key")
    scheme = "http"
    if os.path.exists(cert) and os.path.exists(key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    print(f"minio (lab stand-in): S3 API on {scheme}://{address[0] or '0.0.0.0'}:{address[1]}, data in {DATA}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
