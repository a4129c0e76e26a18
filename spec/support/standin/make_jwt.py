#!/usr/bin/python3
"""Crafts a private_key_jwt client assertion (RFC 7523 §2.2), for specs that post
assertions to the stand-in themselves (expired, replayed, badly signed, ...),
which ducky never makes.  Independent of the stand-in's verifier
(standin_auth.py) except for the library: python3-cryptography.

  make_jwt.py --key FILE --client-id ID --aud AUD [--alg RS256] [--kid K]
      [--iat-in 0] [--exp-in 60] [--jti J] [--claims JSON] [--header JSON]
      [--pss-salt digest|max] [--ecdsa-der] [--sign-alg ALG]

Prints the JWT.  Times are seconds relative to now.  --claims/--header are merged
over the defaults (a null value removes the member).  Deliberate mistakes:
--pss-salt max (OpenSSL's default salt length instead of the hash length),
--ecdsa-der (DER instead of r||s), --sign-alg (sign with another algorithm
than the header names).
"""
import argparse
import base64
import json
import secrets
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(key, alg, data, pss_salt="digest", ecdsa_der=False):
    h = getattr(hashes, "SHA" + alg[2:])()
    if alg.startswith("RS"):
        return key.sign(data, padding.PKCS1v15(), h)
    if alg.startswith("PS"):
        salt = h.digest_size if pss_salt == "digest" else padding.PSS.MAX_LENGTH
        return key.sign(data, padding.PSS(mgf=padding.MGF1(h), salt_length=salt), h)
    der = key.sign(data, ec.ECDSA(h))
    if ecdsa_der:
        return der
    n = (key.curve.key_size + 7) // 8
    r, s = decode_dss_signature(der)
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--aud", required=True)
    ap.add_argument("--alg", default="RS256")
    ap.add_argument("--sign-alg")
    ap.add_argument("--kid")
    ap.add_argument("--iat-in", type=float, default=0)
    ap.add_argument("--exp-in", type=float, default=60)
    ap.add_argument("--jti")
    ap.add_argument("--claims", default="{}")
    ap.add_argument("--header", default="{}")
    ap.add_argument("--pss-salt", choices=("digest", "max"), default="digest")
    ap.add_argument("--ecdsa-der", action="store_true")
    a = ap.parse_args()
    with open(a.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    now = int(time.time())
    header = {"alg": a.alg, "typ": "JWT"}
    if a.kid:
        header["kid"] = a.kid
    claims = {"iss": a.client_id, "sub": a.client_id, "aud": a.aud, "iat": now + int(a.iat_in),
              "exp": now + int(a.exp_in), "jti": a.jti or secrets.token_urlsafe(16)}
    for base, extra in ((header, a.header), (claims, a.claims)):
        for k, v in json.loads(extra).items():
            if v is None:
                base.pop(k, None)
            else:
                base[k] = v
    data = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode()))
    sig = sign(key, a.sign_alg or a.alg, data.encode("ascii"), a.pss_salt, a.ecdsa_der)
    print(data + "." + b64url(sig))


if __name__ == "__main__":
    main()
