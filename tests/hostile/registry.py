#!/usr/bin/python3
"""A registry over TLS that serves the hostile corpus (tests/hostile/make-corpus.py) and misbehaves
on request.

    registry.py PORT CERT KEY CORPUSDIR

/v2/hostile/CASE/...        the corpus case CASE as written.
/v2/fault/MODE/CASE/...     CASE, whose layer blobs fail as MODE says:
    500, 429            always that status (429 with Retry-After: 1)
    503once             503 the first time, then the blob
    hang, hangonce      the headers, then no body until the client gives up (always, or once)
    close, closeonce    the headers and half the body, then the connection is closed
    slow                the blob at about 64 KiB/s
Each fault repository's manifest carries its mode as an annotation, so its image id is its own.
Every request is logged to stderr as "METHOD PATH STATUS".
"""
import hashlib
import http.server
import json
import os
import ssl
import sys
import threading
import time

port, cert, key, corpus = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
with open(os.path.join(corpus, "overrides.json")) as f:
    overrides = json.load(f)
lock = threading.Lock()
seen_faults = {}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def manifest_for(repository):
    """(body, content type, fault mode or None) of a repository, or None."""
    parts = repository.split("/")
    if len(parts) == 2 and parts[0] == "hostile":
        case, mode = parts[1], None
    elif len(parts) == 3 and parts[0] == "fault":
        mode, case = parts[1], parts[2]
    else:
        return None
    path = os.path.join(corpus, "manifests", case)
    if "/" in case or not os.path.isfile(path):
        return None
    body, content_type = read(path), read(path + ".type").decode()
    if mode:
        document = json.loads(body)
        document.setdefault("annotations", {})["hostile.fault"] = mode
        body = json.dumps(document).encode()
    return body, content_type, mode


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def log(self, status):
        sys.stderr.write("%s %s %s\n" % (self.command, self.path, status))
        sys.stderr.flush()

    def send(self, status, body=b"", headers=None):
        self.log(status)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message, headers=None):
        return self.send(status, json.dumps({"errors": [{"code": code, "message": message}]}).encode(), headers)

    def do_GET(self):
        if self.path in ("/v2/", "/v2"):
            return self.send(200, b"{}", {"Content-Type": "application/json"})
        if not self.path.startswith("/v2/"):
            return self.error(404, "NOT_FOUND", "not found")
        rest = self.path[len("/v2/"):]
        for kind in ("/manifests/", "/blobs/"):
            if kind in rest:
                repository, ref = rest.rsplit(kind, 1)
                break
        else:
            return self.error(404, "NOT_FOUND", "not found")
        found = manifest_for(repository)
        if found is None:
            return self.error(404, "NAME_UNKNOWN", "repository name not known to registry")
        body, content_type, mode = found
        if kind == "/manifests/":
            if ref != "latest" and ref != "sha256:" + hashlib.sha256(body).hexdigest() and not ref.startswith("sha256:"):
                return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            return self.send(200, body, {"Content-Type": content_type, "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()})
        blob_path = os.path.join(corpus, "blobs", overrides.get(ref, ref))
        if "/" in ref or not os.path.isfile(blob_path):
            return self.error(404, "BLOB_UNKNOWN", "blob unknown")
        data = read(blob_path)
        is_layer = any(layer["digest"] == ref for layer in json.loads(body).get("layers", []))
        if mode and is_layer:
            return self.fault(mode, data)
        return self.send(200, data)

    def fault(self, mode, data):
        with lock:
            count = seen_faults.get(self.path, 0)
            seen_faults[self.path] = count + 1
        once = mode.endswith("once")
        if once and count > 0:
            return self.send(200, data)
        base = mode[:-4] if once else mode
        if base == "500":
            return self.error(500, "UNKNOWN", "internal server error (injected)")
        if base == "429":
            return self.error(429, "TOOMANYREQUESTS", "slow down (injected)", {"Retry-After": "1"})
        if base == "503":
            return self.error(503, "UNAVAILABLE", "unavailable (injected)", {"Retry-After": "0"})
        self.log("%s-200" % base)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if base == "hang":
            # Hold the connection without a byte until the client gives up (or 15 minutes pass).
            self.wfile.flush()
            deadline = time.time() + 900
            while time.time() < deadline:
                time.sleep(1)
                try:
                    self.connection.setblocking(False)
                    if self.connection.recv(1) == b"":
                        break
                except (BlockingIOError, ssl.SSLWantReadError):
                    pass
                except OSError:
                    break
                finally:
                    try:
                        self.connection.setblocking(True)
                    except OSError:
                        break
            self.close_connection = True
            return
        if base == "close":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if base == "slow":
            for offset in range(0, len(data), 16384):
                self.wfile.write(data[offset:offset + 16384])
                self.wfile.flush()
                time.sleep(0.25)
            return
        self.wfile.write(data)

    do_HEAD = do_GET


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
