"""Client authentication without a shared secret, for the stand-in (standin.py).

Two parts, both used only by spec/support/standin/standin.py:

private_key_jwt (RFC 7523 §2.2, Auth0 "Private Key JWT")
  The token request carries client_assertion_type = ASSERTION_TYPE and
  client_assertion = a JWS (compact form) signed with the client's private key.
  JwtClients.check() verifies it as Auth0 does: the signature against a public
  key registered for the client id, `alg` matching the key (RS256/384/512,
  PS256/384/512 with a salt as long as the hash, ES256/ES384 with the raw r||s
  signature), iss = sub = client_id (and = the request's client_id when it has
  one), aud one of the client's accepted audiences (default: the origin the
  request came to, "https://localhost:PORT/"), exp in the future and at most
  5 minutes after iat, iat/nbf at most 10 s in the future, a jti of 1..64
  characters never used before by that client.  Signatures are checked with
  python3-cryptography (Debian); without it the stand-in still starts and
  answers private_key_jwt requests with 500 server_error.

tls_client_auth (RFC 8705 §2.1)
  A TLS listener asks for a client certificate and lets a certificate from the
  throw-away CA or from the unrelated CA through the handshake (as Auth0's
  mTLS edge does); peer_cert() tells which it was, and the token endpoint
  refuses the unrelated one and any whose CN is not the client id.  Standard
  library only.

Key material is made with the `openssl` CLI at start-up in DIR/jwt and DIR/mtls
(private keys 0600), never committed: make_material().
"""

import base64
import concurrent.futures
import hashlib
import json
import os
import re
import secrets
import subprocess
import threading
import time

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    AVAILABLE = True
except ImportError:  # the rest of the stand-in works without it
    AVAILABLE = False

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SKEW = 10           # seconds of clock skew allowed for iat and nbf (Auth0's figure)
MAX_LIFETIME = 300  # exp at most this long after iat (Auth0: 5 minutes)
MAX_JTI = 64        # Auth0's limit on the jti claim

# the CN of the CA whose client certificates are trusted (standin.py makes it)
TRUSTED_CA_CN = "Ducky Standin Test CA"
SAFE_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")  # ids that may name a certificate

# alg -> (key type, hash name, padding or curve)
ALGS = {
    "RS256": ("RSA", "SHA256", "pkcs1"), "RS384": ("RSA", "SHA384", "pkcs1"),
    "RS512": ("RSA", "SHA512", "pkcs1"), "PS256": ("RSA", "SHA256", "pss"),
    "PS384": ("RSA", "SHA384", "pss"), "PS512": ("RSA", "SHA512", "pss"),
    "ES256": ("EC", "SHA256", "secp256r1"), "ES384": ("EC", "SHA384", "secp384r1"),
}


# --------------------------------------------------------------------------
# key material, made at start-up and on demand

OPENSSL_CFG = """
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# the well-known JWT clients: id -> (key name, pinned alg, kid)
JWT_CLIENTS = {
    "jwt-rs256": ("rsa", "RS256", "rsa-1"),
    "jwt-rs384": ("rsa", "RS384", "rsa-1"),
    "jwt-ps256": ("rsa", "PS256", "rsa-1"),
    "jwt-es256": ("ec", "ES256", "ec-1"),
}


def openssl(d, *args, env=None):
    p = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s%s" % (args[0], p.stdout, p.stderr))


def private_dir(d, name):
    path = os.path.join(d, name)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def make_jwt_key(d, name, kind):
    """DIR/jwt/<name>.key (PKCS#8, 0600) and <name>.pub; RSA keys also <name>.pkcs1.key."""
    jd = private_dir(d, "jwt")
    key, pub = os.path.join(jd, name + ".key"), os.path.join(jd, name + ".pub")
    if kind == "RSA":
        openssl(jd, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key)
    else:
        openssl(jd, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    os.chmod(key, 0o600)
    openssl(jd, "pkey", "-in", key, "-pubout", "-out", pub)
    info = {"type": kind, "private_key_file": key, "public_key_file": pub}
    if kind == "RSA":  # the same key as "BEGIN RSA PRIVATE KEY" (PKCS#1)
        info["pkcs1_file"] = os.path.join(jd, name + ".pkcs1.key")
        openssl(jd, "rsa", "-in", key, "-traditional", "-out", info["pkcs1_file"])
        os.chmod(info["pkcs1_file"], 0o600)
    return info


def make_client_cert(d, client_id, ca="ca", password=None, kind="EC"):
    """A client certificate CN=client_id issued by DIR/<ca>.pem, written to
    DIR/mtls/<client_id>[.<ca>].{pem,key}; the key encrypted when password is set."""
    md = private_dir(d, "mtls")
    cfg = os.path.join(md, "cfg")
    if not os.path.exists(cfg):  # make_material writes it before any thread runs
        with open(cfg + ".tmp", "w") as f:
            f.write(OPENSSL_CFG)
        os.replace(cfg + ".tmp", cfg)
    base = os.path.join(md, client_id + ("" if ca == "ca" else "." + ca))
    cert, key = base + ".pem", base + ".key"
    newkey = (["-newkey", "rsa:2048"] if kind == "RSA"
              else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    protect = ["-passout", "env:DUCKY_KEY_PASSWORD"] if password is not None else ["-nodes"]
    openssl(md, "req", "-x509", "-config", cfg, *newkey, *protect, "-keyout", key, "-out", cert,
            "-subj", "/CN=" + client_id, "-CA", os.path.join(d, ca + ".pem"),
            "-CAkey", os.path.join(d, ca + ".key"), "-days", "3650", "-extensions", "client_ext",
            env={"DUCKY_KEY_PASSWORD": password or ""})
    os.chmod(key, 0o600)
    out = {"client_id": client_id, "cert_file": cert, "key_file": key}
    if password is not None:
        out["key_password"] = password
    return out


def make_material(d):
    """Keys and certificates for the well-known ids; -> the standin.json fields.
    RSA key generation takes a while on a busy machine: all run at once."""
    client_cert = make_client_cert(d, "mtls-client")  # also writes DIR/mtls/cfg, before the threads
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        rsa_key, ec_key, rsa_other, password_cert, other_ca_cert = [pool.submit(f, *a, **k) for f, a, k in (
            (make_jwt_key, (d, "rsa", "RSA"), {}), (make_jwt_key, (d, "ec", "EC"), {}),
            (make_jwt_key, (d, "rsa_other", "RSA"), {}),
            (make_client_cert, (d, "mtls-password"), {"password": secrets.token_urlsafe(12)}),
            (make_client_cert, (d, "mtls-client"), {"ca": "other_ca"}))]
    clients = {cid: {"key": k, "alg": alg, "kid": kid} for cid, (k, alg, kid) in JWT_CLIENTS.items()}
    return {"private_key_jwt": AVAILABLE,
            "jwt_keys": {"rsa": rsa_key.result(), "ec": ec_key.result(), "rsa_other": rsa_other.result()},
            "jwt_clients": clients,
            "mtls_clients": {"mtls-client": client_cert,
                             "mtls-password": password_cert.result()},
            "mtls_other_ca_client": other_ca_cert.result()}


# --------------------------------------------------------------------------
# private_key_jwt

class Refused(Exception):
    """A token request the assertion does not authenticate: (status, error, description)."""

    def __init__(self, desc, status=401, error="invalid_client"):
        super().__init__(desc)
        self.status, self.error, self.desc = status, error, desc


def b64url(seg):
    """base64url without padding (RFC 7515 §2), strictly."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", seg) or len(seg) % 4 == 1:
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def load_public_key(pem):
    """-> (key, None) or (None, error) for a PEM public key (or certificate)."""
    if not AVAILABLE:
        return None, "python3-cryptography is not installed"
    data = pem.encode("utf-8")
    try:
        if b"CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as e:
        return None, "not a PEM public key: %s" % e
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            return None, "RSA keys need 2048 bits or more"
    elif not (isinstance(key, ec.EllipticCurvePublicKey)
              and key.curve.name in ("secp256r1", "secp384r1")):
        return None, "only RSA and EC P-256/P-384 keys are supported"
    return key, None


def key_fits(key, alg):
    kind, _, curve = ALGS[alg]
    if kind == "RSA":
        return isinstance(key, rsa.RSAPublicKey)
    return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == curve


def signature_ok(key, alg, data, sig):
    kind, hname, mode = ALGS[alg]
    h = getattr(hashes, hname)()
    try:
        if kind == "RSA" and mode == "pkcs1":
            key.verify(sig, data, padding.PKCS1v15(), h)
        elif kind == "RSA":  # RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash
            key.verify(sig, data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
        else:  # RFC 7518 §3.4: r || s, each as long as the curve's order
            n = (key.curve.key_size + 7) // 8
            if len(sig) != 2 * n:
                return False
            r, s = int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(h))
        return True
    except InvalidSignature:
        return False


class JwtClients:
    """Public keys registered per client id, accepted audiences, used jti values."""

    def __init__(self, material):
        self.lock = threading.Lock()
        self.key_files = {name: k["public_key_file"] for name, k in material["jwt_keys"].items()}
        self.base = {}
        for cid, c in material["jwt_clients"].items():
            self.base[cid] = {"keys": [], "audiences": None}
            err = self.add_key(self.base[cid], {"key": c["key"], "alg": c["alg"], "kid": c["kid"]})
            if err and AVAILABLE:
                raise RuntimeError("%s: %s" % (cid, err))
        self.used = {}  # (client_id, jti) -> forget after (unix time)
        self.reset()

    def reset(self):
        """Back to the well-known clients only; used jti values are kept."""
        with self.lock:
            self.clients = {cid: {"keys": list(c["keys"]), "audiences": c["audiences"]}
                            for cid, c in self.base.items()}

    def add_key(self, reg, req):
        if "key" in req:
            path = self.key_files.get(req["key"])
            if path is None:
                return "unknown key name %r (one of %s)" % (req["key"], ", ".join(sorted(self.key_files)))
            with open(path) as f:
                pem = f.read()
        else:
            pem = req.get("public_key")
            if not isinstance(pem, str):
                return "key (a name) or public_key (PEM text) required"
        key, err = load_public_key(pem)
        if err:
            return err
        algs = req.get("alg")
        if isinstance(algs, str):
            algs = [algs]
        if algs is not None:
            if not isinstance(algs, list) or not all(a in ALGS and key_fits(key, a) for a in algs):
                return "alg must name algorithms (of %s) that fit the key" % ", ".join(ALGS)
            algs = set(algs)
        kid = req.get("kid")
        if kid is not None and not isinstance(kid, str):
            return "kid must be a string"
        reg["keys"].append({"key": key, "algs": algs, "kid": kid})
        return None

    def register(self, cid, req):
        """The jwt_client control -> error text or None."""
        auds = req.get("audiences")
        if auds is not None and not (isinstance(auds, list) and auds
                                     and all(isinstance(a, str) for a in auds)):
            return "audiences must be a non-empty list of strings (or null: the default)"
        with self.lock:
            if req.get("remove"):
                self.clients.pop(cid, None)
                return None
            old = self.clients.get(cid)
            if "key" not in req and "public_key" not in req:  # audiences only
                if old is None:
                    return "client %s has no key registered" % cid
                old["audiences"] = auds
                return None
            reg = {"keys": list(old["keys"]) if old and req.get("add") else [], "audiences": auds}
            if old and "audiences" not in req:
                reg["audiences"] = old["audiences"]
            err = self.add_key(reg, req)
            if err:
                return err
            self.clients[cid] = reg
            return None

    def check(self, params, origin):
        """Verifies the assertion of a token request (params: its decoded fields;
        origin: the default accepted audience).  -> (record, None) or (record,
        Refused).  The record, for stats, has the decoded header and claims,
        never the signature: {client_id, header, claims, valid, error}."""
        rec = {"client_id": params.get("client_id"), "header": None, "claims": None,
               "valid": False, "error": None}
        try:
            self._check(params, origin, rec)
        except Refused as e:
            rec["error"] = e.desc
            return rec, e
        rec["valid"] = True
        return rec, None

    def _check(self, params, origin, rec):
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            raise Refused("client_assertion_type must be %s" % ASSERTION_TYPE, 400, "invalid_request")
        jwt = params.get("client_assertion")
        if not isinstance(jwt, str) or not jwt:
            raise Refused("client_assertion is missing", 400, "invalid_request")
        if "client_secret" in params:
            raise Refused("Multiple client authentication methods (client_secret and "
                          "client_assertion)", 400, "invalid_request")
        if not AVAILABLE:
            raise Refused("the stand-in needs python3-cryptography for private_key_jwt",
                          500, "server_error")
        parts = jwt.split(".")
        if len(parts) != 3:
            raise Refused("client_assertion is not a signed JWT (JWS compact serialization)")
        try:
            header, claims = json.loads(b64url(parts[0])), json.loads(b64url(parts[1]))
            sig = b64url(parts[2])
        except ValueError as e:
            raise Refused("client_assertion is malformed: %s" % e) from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise Refused("client_assertion header and claims must be JSON objects")
        rec["header"], rec["claims"] = header, claims
        cid = params.get("client_id", claims.get("sub"))
        rec["client_id"] = cid
        if not isinstance(cid, str) or not cid:
            raise Refused("no client_id and no sub claim")
        with self.lock:
            reg = self.clients.get(cid)
            keys = list(reg["keys"]) if reg else []
            accepted = (reg or {}).get("audiences") or [origin]
        if not keys:
            raise Refused("Client %s has no public key registered for private_key_jwt" % cid)

        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGS:
            raise Refused("alg %s is not supported" % json.dumps(alg))
        fit = [k for k in keys if key_fits(k["key"], alg) and (k["algs"] is None or alg in k["algs"])]
        if not fit:
            raise Refused("alg %s does not match the credential of client %s" % (alg, cid))
        if kid is not None:
            fit = [k for k in fit if k["kid"] is None or k["kid"] == kid]
            if not fit:
                raise Refused("kid %s is not a credential of client %s" % (json.dumps(kid), cid))
        data = (parts[0] + "." + parts[1]).encode("ascii")
        if not any(signature_ok(k["key"], alg, data, sig) for k in fit):
            raise Refused("Invalid signature for client_assertion")

        if claims.get("iss") != cid:
            raise Refused("iss claim must be the client_id")
        if claims.get("sub") != cid:
            raise Refused("sub claim must be the client_id")
        aud = claims.get("aud")
        if not any(isinstance(a, str) and a in accepted for a in (aud if isinstance(aud, list) else [aud])):
            raise Refused("aud claim %s is not the expected audience %s"
                          % (json.dumps(aud), " or ".join(accepted)))
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not is_number(exp):
            raise Refused("exp claim is missing or not a number")
        if exp <= now:
            raise Refused("client_assertion has expired")
        for name in ("iat", "nbf"):
            v = claims.get(name)
            if v is not None and (not is_number(v) or v > now + SKEW):
                raise Refused("%s claim is not a time in the past" % name)
        if exp - (iat if iat is not None else now) > MAX_LIFETIME:
            raise Refused("'exp' claim must specify a time that is no more than 5 minutes after 'iat'")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI:
            raise Refused("jti claim must be a string of 1 to %d characters" % MAX_JTI)
        with self.lock:
            for k in [k for k, until in self.used.items() if until < now]:
                del self.used[k]
            if (cid, jti) in self.used:
                raise Refused("jti claim has already been used (client_assertion replayed)")
            self.used[(cid, jti)] = exp + SKEW


# --------------------------------------------------------------------------
# tls_client_auth

def peer_cert(sock):
    """The client certificate of a TLS connection on the mTLS listener, or None:
    {cn, issuer, trusted (issued by the throw-away CA), x5t (RFC 8705 §3.1
    thumbprint)}.  The handshake let only certificates from the two CAs through,
    so the issuer's name tells which one signed it."""
    try:
        parsed, der = sock.getpeercert(), sock.getpeercert(binary_form=True)
    except (AttributeError, ValueError):
        return None
    if not der or not parsed:
        return None

    def cn(name):
        return next((v for rdn in name for k, v in rdn if k == "commonName"), None)

    issuer = cn(parsed.get("issuer", ()))
    return {"cn": cn(parsed.get("subject", ())), "issuer": issuer,
            "trusted": issuer == TRUSTED_CA_CN,
            "x5t": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()}
