"""AWS Signature Version 4, shared by the lab's MinIO stand-in (verifying) and its `mc`
(signing). Only what S3 path-style requests need."""
import hashlib
import hmac
import urllib.parse

ALGORITHM = "AWS4-HMAC-SHA256"


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def _quote(s):
    return urllib.parse.quote(s, safe="-_.~")


def canonical_query(query, drop=()):
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(pairs) if k not in drop)


def signing_key(secret, date, region, service):
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def signature(secret, method, path, query, headers, signed, payload_hash, amz_date, scope, drop=()):
    """headers: lower-case name -> value; signed: the signed header names, in order."""
    canon_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    request = "\n".join([method, path, canonical_query(query, drop), canon_headers, ";".join(signed), payload_hash])
    to_sign = "\n".join([ALGORITHM, amz_date, scope, sha256_hex(request.encode())])
    date, region, service, _ = scope.split("/")
    return hmac.new(signing_key(secret, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
