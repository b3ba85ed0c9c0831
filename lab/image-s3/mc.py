#!/usr/bin/python3
"""Lab stand-in for MinIO's `mc` client, for the subcommands provision's cache_server role runs
inside the server's container (see minio.py):
  mc mb --ignore-existing ALIAS/BUCKET
  mc ls ALIAS/BUCKET
  mc stat ALIAS/BUCKET
  mc ilm import ALIAS/BUCKET   (lifecycle JSON on stdin)
  mc ilm export ALIAS/BUCKET   (lifecycle JSON on stdout)
The alias comes from MC_HOST_<ALIAS>=https://ACCESS:SECRET@HOST:PORT, as with mc; TLS is
verified with the CAs in $MC_CONFIG_DIR/certs/CAs/ (mc's place for them; MC_CONFIG_DIR defaults
to ~/.mc, and the MinIO image sets it to /tmp/.mc, as the lab's image does) unless --insecure.
"""
import datetime
import glob
import http.client
import json
import os
import ssl
import sys
import urllib.parse
import xml.etree.ElementTree as ET

sys.path.insert(0, "/usr/lib/minio-standin")
import sigv4  # noqa: E402

REGION = "us-east-1"


def die(msg, code=1):
    print(f"mc: <ERROR> {msg}", file=sys.stderr)
    sys.exit(code)


def target(arg):
    alias, _, rest = arg.partition("/")
    url = os.environ.get(f"MC_HOST_{alias}")
    if not url:
        die(f"no alias `{alias}` (set MC_HOST_{alias})")
    return urllib.parse.urlsplit(url), rest


def request(url, method, path, query="", body=b"", insecure=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = sigv4.sha256_hex(body)
    host = url.netloc.rpartition("@")[2]
    headers = {"host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload}
    signed = sorted(headers)
    scope = f"{date}/{REGION}/s3/aws4_request"
    access, secret = urllib.parse.unquote(url.username or ""), urllib.parse.unquote(url.password or "")
    sig = sigv4.signature(secret, method, path, query, headers, signed, payload, amz_date, scope)
    headers["authorization"] = f"{sigv4.ALGORITHM} Credential={access}/{scope}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    if url.scheme == "https":
        ctx = ssl.create_default_context()
        config = os.environ.get("MC_CONFIG_DIR") or os.path.expanduser("~/.mc")
        for ca in glob.glob(os.path.join(config, "certs", "CAs", "*")):
            ctx.load_verify_locations(ca)
        if insecure:
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request(method, path + ("?" + query if query else ""), body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    except OSError as e:
        die(f"cannot reach {host}: {e}")


def code_of(body):
    try:
        return ET.fromstring(body).findtext("Code") or ""
    except ET.ParseError:
        return ""


def main():
    args = sys.argv[1:]
    insecure = "--insecure" in args
    args = [a for a in args if a not in ("--insecure", "--json", "--quiet", "-q")]
    if not args:
        die("usage: mc mb|ls|ilm ...", 2)
    cmd = args.pop(0)
    if cmd == "ilm" and args:
        cmd = "ilm " + args.pop(0)
    ignore = "--ignore-existing" in args
    rest = [a for a in args if not a.startswith("-")]
    if len(rest) != 1:
        die(f"{cmd}: expected ALIAS/BUCKET", 2)
    url, bucket = target(rest[0])
    path = "/" + urllib.parse.quote(bucket.strip("/"))
    if cmd == "mb":
        status, body = request(url, "PUT", path, insecure=insecure)
        if status == 200 or (ignore and code_of(body) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
            print(f"Bucket created successfully `{rest[0]}`.")
            return
    elif cmd == "ls":
        status, body = request(url, "GET", path, insecure=insecure)
        if status == 200:
            for k in ET.fromstring(body).iter("Key"):
                print(k.text)
            return
    elif cmd == "stat":
        status, body = request(url, "HEAD", path, insecure=insecure)
        if status == 200:
            print(f"Name      : {bucket}")
            return
    elif cmd == "ilm import":
        rules = json.load(sys.stdin).get("Rules", [])
        doc = ET.Element("LifecycleConfiguration")
        for r in rules:
            rule = ET.SubElement(doc, "Rule")
            ET.SubElement(rule, "ID").text = r.get("ID", "")
            ET.SubElement(rule, "Status").text = r.get("Status", "Enabled")
            ET.SubElement(ET.SubElement(rule, "Filter"), "Prefix").text = (r.get("Filter") or {}).get("Prefix", "")
            ET.SubElement(ET.SubElement(rule, "Expiration"), "Days").text = str(r["Expiration"]["Days"])
        status, body = request(url, "PUT", path, "lifecycle=", ET.tostring(doc), insecure=insecure)
        if status == 200:
            print(f"Lifecycle configuration imported successfully to `{rest[0]}`.")
            return
    elif cmd == "ilm export":
        status, body = request(url, "GET", path, "lifecycle=", insecure=insecure)
        if status == 200:
            rules = [
                {"Expiration": {"Days": int(r.findtext("Expiration/Days"))}, "ID": r.findtext("ID"), "Status": r.findtext("Status")}
                for r in ET.fromstring(body).iter("Rule")
            ]
            print(json.dumps({"Rules": rules}))
            return
    else:
        die(f"`{cmd}` is not a subcommand of this stand-in", 2)
    die(f"{cmd} {rest[0]}: {code_of(body) or status}")


if __name__ == "__main__":
    main()
