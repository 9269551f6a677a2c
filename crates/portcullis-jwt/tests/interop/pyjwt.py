#!/usr/bin/env python3
"""Interoperability vectors between portcullis-jwt and PyJWT, an independent implementation.

    pip install pyjwt cryptography

    # 1. PyJWT signs tokens that portcullis must accept (tests/interop.rs reads them):
    python3 crates/portcullis-jwt/tests/interop/pyjwt.py generate

    # 2. portcullis signs tokens (PORTCULLIS_WRITE_VECTORS=1 cargo test -p portcullis-jwt
    #    --test interop), and PyJWT verifies them through portcullis' JWKS:
    python3 crates/portcullis-jwt/tests/interop/pyjwt.py verify

Both outputs are checked in; tests/interop.rs checks that every portcullis token it finds was
verified by PyJWT (by SHA-256) and that every PyJWT token verifies in portcullis.
"""

import hashlib
import json
import os
import secrets
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

HERE = os.path.dirname(os.path.abspath(__file__))
ISS = "https://issuer.example"
AUD = "https://api.example"
CLAIMS = {
    "iss": ISS,
    "aud": AUD,
    "sub": "alice",
    "user": "alice",
    "role": "advertiser",
    "iat": 1700000000,
    "nbf": 1700000000,
    "exp": 4102444800,
}


def generate():
    keys = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "PS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }
    jwks, tokens = [], []
    for alg, private in keys.items():
        kid = f"pyjwt-{alg.lower()}"
        jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(private.public_key()))
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        jwks.append(jwk)
        claims = dict(CLAIMS, jti=secrets.token_urlsafe(12))
        token = jwt.encode(claims, private, algorithm=alg, headers={"kid": kid})
        tokens.append({"alg": alg, "kid": kid, "token": token})
    secret = secrets.token_bytes(32)
    claims = dict(CLAIMS, jti=secrets.token_urlsafe(12))
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "pyjwt-hs256"})
    tokens.append({"alg": "HS256", "kid": "pyjwt-hs256", "token": token})
    out = {
        "generated_by": "python3 crates/portcullis-jwt/tests/interop/pyjwt.py generate",
        "pyjwt_version": jwt.__version__,
        "issuer": ISS,
        "audience": AUD,
        "hs256_secret_hex": secret.hex(),
        "jwks": {"keys": jwks},
        "tokens": tokens,
    }
    with open(os.path.join(HERE, "pyjwt_tokens.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


def verify():
    with open(os.path.join(HERE, "portcullis_tokens.json")) as f:
        vectors = json.load(f)
    keys = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in vectors["jwks"]["keys"]}
    secret = bytes.fromhex(vectors["hs256_secret_hex"])
    verified = []
    for entry in vectors["tokens"]:
        token, alg = entry["token"], entry["alg"]
        header = jwt.get_unverified_header(token)
        key = secret if alg.startswith("HS") else keys[header["kid"]].key
        # Check the claims as of the vectors' issue time, like the Rust side does.
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=vectors["audience"],
            issuer=vectors["issuer"],
            options={"require": ["exp", "iat", "nbf", "sub", "jti", "iss", "aud"]},
        )
        assert claims["user"] == "alice" and claims["role"] == "advertiser", claims
        head, payload, signature = token.split(".")
        tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
        try:
            jwt.decode(tampered, key, algorithms=[alg], audience=vectors["audience"])
            raise SystemExit(f"PyJWT accepted a tampered {alg} token")
        except jwt.InvalidSignatureError:
            pass
        except jwt.DecodeError:
            pass
        verified.append({"alg": alg, "kid": header["kid"], "sha256": hashlib.sha256(token.encode()).hexdigest()})
    out = {
        "generated_by": "python3 crates/portcullis-jwt/tests/interop/pyjwt.py verify",
        "pyjwt_version": jwt.__version__,
        "verified": verified,
    }
    with open(os.path.join(HERE, "pyjwt_verified.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(f"PyJWT {jwt.__version__} verified {len(verified)} portcullis tokens")


if __name__ == "__main__":
    {"generate": generate, "verify": verify}[sys.argv[1]]()
