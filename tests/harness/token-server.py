#!/usr/bin/python3
"""A registry token service in the Docker Hub style, for the test bed.

GET /token?service=S&scope=repository:NAME:ACTIONS with HTTP basic credentials answers
{"token": JWT, "access_token": JWT, "expires_in": N}. The JWT is RS256-signed by a key whose
certificate (signed by the bed's CA) travels in the x5c header, which is how the distribution
registry verifies it against its rootcertbundle. Wrong or missing credentials get a 401.
Signing uses the openssl command line so the service needs nothing beyond the standard library.
"""
import argparse
import base64
import http.server
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:5003")
    parser.add_argument("--cert", required=True, help="TLS certificate of the service")
    parser.add_argument("--key", required=True, help="TLS key of the service")
    parser.add_argument("--signer-cert", required=True)
    parser.add_argument("--signer-key", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()

    der = subprocess.run(["openssl", "x509", "-in", args.signer_cert, "-outform", "DER"],
                         check=True, capture_output=True).stdout
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    expected = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()

    def sign(claims: dict) -> str:
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", args.signer_key],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return signing_input + "." + b64url(signature)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *values):  # keep test output quiet
            pass

        def reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urllib.parse.urlparse(self.path)
            if url.path != "/token":
                self.reply(404, {"error": "not found"})
                return
            if self.headers.get("Authorization") != expected:
                self.reply(401, {"error": "unauthorized", "message": "wrong or missing credentials"})
                return
            query = urllib.parse.parse_qs(url.query)
            access = []
            for scope in query.get("scope", []):
                for item in scope.split(" "):
                    parts = item.split(":")
                    if len(parts) >= 3 and parts[0] == "repository":
                        access.append({"type": "repository", "name": ":".join(parts[1:-1]),
                                       "actions": parts[-1].split(",")})
            now = int(time.time())
            claims = {"iss": args.issuer, "sub": args.user, "aud": query.get("service", [""])[0],
                      "exp": now + 300, "nbf": now - 10, "iat": now,
                      "jti": b64url(os.urandom(12)), "access": access}
            token = sign(claims)
            self.reply(200, {"token": token, "access_token": token, "expires_in": 300,
                             "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})

    host, port = args.listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"token service on https://{args.listen}/token", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
