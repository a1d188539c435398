#!/usr/bin/env python3
"""Verify an Arbiter audit export on your own, without trusting Arbiter.

    python3 -m pip install cryptography
    python3 verify_audit.py EXPORT_DIR VKEY_FILE

EXPORT_DIR is a bundle written by `arbiter audit export` (entries.jsonl, checkpoints/,
vkey.txt, SHA256SUMS). VKEY_FILE holds the verifier key `<name>+<key id>+<key>`, obtained
from a channel other than the bundle. Exits 0 when everything verifies, 1 otherwise, and names
every problem with its file, line and seq. The format is the audit format v1.

The bundle is not trusted: only its own files are opened (never a name SHA256SUMS gives), only
regular files inside EXPORT_DIR and never through a link, and no more than MAX_FILE_BYTES of a
file or MAX_LINE_BYTES of a line of entries.jsonl is read.
"""
import base64
import hashlib
import json
import os
import re
import stat
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
HEADER = "arbiter-audit-checkpoint/v1"
MAX_LINE_BYTES = 4 << 20  # the longest line of entries.jsonl read
MAX_FILE_BYTES = 16 << 20  # the most read of SHA256SUMS, a checkpoint or vkey.txt
problems = []


class Unreadable(Exception):
    """A file of the bundle that is not read: not a regular file, or too large."""


def open_member(export_dir, name):
    """Opens a file of the bundle, named by the verifier: a regular file, not through a link."""
    path = export_dir / name
    if not stat.S_ISREG(os.lstat(path).st_mode):  # lstat: a link is not followed
        raise Unreadable("not a regular file (a link, a device or a folder): not read")
    return open(path, "rb")


def read_member(export_dir, name, limit=MAX_FILE_BYTES):
    with open_member(export_dir, name) as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise Unreadable(f"larger than {limit} bytes: not read further")
    return data


def names_a_member(name):
    """Whether SHA256SUMS could name this file of a bundle."""
    folder, _, file = name.partition("/")
    return name in ("entries.jsonl", "vkey.txt") or (
        folder == "checkpoints" and file not in ("", "..") and "/" not in file)


def problem(where, message):
    problems.append(f"{where}: {message}")


# --- RFC 8785 (JCS) canonical JSON, for the values entries hold (no floats) -------------------
def canonical(value):
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise ValueError("integer beyond 2^53")
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # escapes exactly what JCS escapes
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):  # keys sorted by UTF-16 code units
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(canonical(k) + ":" + canonical(value[k]) for k in keys) + "}"
    raise ValueError(f"{type(value).__name__} is not allowed in an entry (no floats)")


def no_floats(text):
    raise ValueError(f"float {text} is not allowed in an entry")


# --- the verifier key and checkpoints (C2SP signed notes, Ed25519) ----------------------------
def parse_vkey(text):
    name, key_id, key = text.strip().split("+", 2)  # base64 may contain "+"
    key = base64.b64decode(key, validate=True)
    if key[0] != 0x01 or len(key) != 33:
        raise ValueError("not an Ed25519 verifier key")
    if hashlib.sha256(name.encode() + b"\n" + key).digest()[:4].hex() != key_id:
        raise ValueError("the key id does not match the name and key")
    return name, bytes.fromhex(key_id), Ed25519PublicKey.from_public_bytes(key[1:])


def open_checkpoint(note, vkey):
    """Returns (tenant, size, root_hash) if `note` is signed by vkey, else raises ValueError."""
    name, key_id, public_key = vkey
    body, sep, signatures = note.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise ValueError("not a signed note")
    body += "\n"  # the signature covers the text up to and including the newline after issued_at
    signed = False
    for line in signatures[:-1].split("\n"):
        match = re.fullmatch(r"\u2014 (\S+) (\S+)", line)
        if not match:
            raise ValueError(f"bad signature line {line!r}")
        blob = base64.b64decode(match[2], validate=True)
        if match[1] != name or blob[:4] != key_id:
            continue  # another key's signature
        try:
            public_key.verify(blob[4:], body.encode())
        except InvalidSignature:
            raise ValueError("the signature does not verify: the checkpoint was altered")
        signed = True
    if not signed:
        raise ValueError("not signed by the verifier key")
    lines = body[:-1].split("\n")
    if len(lines) != 5 or lines[0] != HEADER or not lines[1].startswith(name + "/"):
        raise ValueError("not a checkpoint of this log")
    if not re.fullmatch(r"[1-9][0-9]*", lines[2]) or not re.fullmatch(r"[0-9a-f]{64}", lines[3]):
        raise ValueError("bad size or hash")
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[4]):
        raise ValueError("bad issued_at")
    return lines[1][len(name) + 1:], int(lines[2]), lines[3]


# --- the bundle ---------------------------------------------------------------------------------
def verify(export_dir, vkey):
    # 1. SHA256SUMS lists every file with its digest. Only the bundle's own files are opened.
    cp_dir = export_dir / "checkpoints"
    files = {"entries.jsonl", "vkey.txt"}
    if os.path.lexists(cp_dir):
        if stat.S_ISDIR(os.lstat(cp_dir).st_mode):
            files |= {f"checkpoints/{name}" for name in os.listdir(cp_dir)}
        else:
            problem("checkpoints", "not a folder of the bundle (a link or a file): not read")
    listed = set()
    try:
        sums = read_member(export_dir, "SHA256SUMS").decode("utf-8", "replace")
    except FileNotFoundError:
        problem("SHA256SUMS", "missing: the bundle's file list cannot be checked")
        sums = ""
    except (OSError, Unreadable) as err:
        problem("SHA256SUMS", f"{err}; the bundle's file list cannot be checked")
        sums = ""
    for n, line in enumerate(sums.splitlines(), 1):
        digest, _, name = line.partition("  ")
        if name not in files:
            if names_a_member(name):
                problem(f"SHA256SUMS:{n}", f"{name} is listed but missing")
            else:
                problem(f"SHA256SUMS:{n}",
                        f"names {json.dumps(name)}, which is not a file of the bundle: not read")
            continue
        listed.add(name)
        try:
            if name == "entries.jsonl":  # read in blocks, whatever its size
                hasher = hashlib.sha256()
                with open_member(export_dir, name) as file:
                    for block in iter(lambda: file.read(1 << 20), b""):
                        hasher.update(block)
                actual = hasher.hexdigest()
            else:
                actual = hashlib.sha256(read_member(export_dir, name)).hexdigest()
        except FileNotFoundError:
            problem(f"SHA256SUMS:{n}", f"{name} is listed but missing")
            continue
        except (OSError, Unreadable) as err:
            problem(name, str(err))
            continue
        if actual != digest:
            problem(name, "its SHA-256 differs from SHA256SUMS")
    for name in sorted(files - listed):
        if name != "vkey.txt" or os.path.lexists(export_dir / name):
            problem(name, "not listed in SHA256SUMS")

    # 2. Checkpoints: each signed by the verifier key; remember size -> root hash.
    checkpoints, tenants = {}, set()
    for where in sorted(f for f in files if f.startswith("checkpoints/")):
        name = where.partition("/")[2]
        try:
            note = read_member(export_dir, where).decode("utf-8")
            tenant, size, root = open_checkpoint(note, vkey)
        except (ValueError, UnicodeDecodeError, OSError, Unreadable) as err:
            problem(where, str(err))
            continue
        if name != f"cp-{size}.txt":
            problem(where, f"the file name does not match its size {size}")
        tenants.add(tenant)
        checkpoints[size] = root
    if len(tenants) > 1:
        problem("checkpoints", f"checkpoints of several tenants: {sorted(tenants)}")

    # 3. Entries: canonical, hashing to entry_hash, gapless seq, linked prev_hash. Read a line at
    # a time, on "\n" only (JCS leaves U+2028 unescaped), none longer than MAX_LINE_BYTES.
    expected_seq, prev_hash, met, number = None, None, set(), 0
    try:
        entries = open_member(export_dir, "entries.jsonl")
    except (OSError, Unreadable) as err:
        problem("entries.jsonl", str(err))
        entries = None
    while entries is not None:
        raw = entries.readline(MAX_LINE_BYTES + 1)
        if not raw:
            break
        number += 1
        where = f"entries.jsonl:{number}"
        if not raw.endswith(b"\n"):
            if len(raw) > MAX_LINE_BYTES:
                problem(where, f"a line longer than {MAX_LINE_BYTES} bytes: not read further")
            else:
                problem(where, "the last line is not terminated (cut off?)")
            break
        try:
            line = raw[:-1].decode("utf-8")
            entry = json.loads(line, parse_float=no_floats, parse_constant=no_floats)
            claimed = entry.pop("entry_hash")
            if canonical({**entry, "entry_hash": claimed}) != line:
                raise ValueError("the line is not canonical JSON")
            seq = entry["seq"]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            problem(where, f"unreadable entry: {err}")
            expected_seq = None if expected_seq is None else expected_seq + 1
            continue
        where += f" (seq {seq})"
        if hashlib.sha256(canonical(entry).encode()).hexdigest() != claimed:
            problem(where, "the entry was altered: it does not hash to its entry_hash")
        if tenants and entry.get("tenant") not in tenants:
            problem(where, f"tenant {entry.get('tenant')!r} is not the checkpoints' tenant")
        if expected_seq is None:  # the first line: genesis, or anchored by a checkpoint
            if seq == 0:
                if entry["prev_hash"] != GENESIS:
                    problem(where, "seq 0 must have prev_hash 000...")
            elif checkpoints.get(seq) != entry["prev_hash"]:
                problem(where, f"the export starts at seq {seq}, not at a checkpoint it includes")
            else:
                met.add(seq)
        elif seq != expected_seq:
            problem(where, f"seq {seq} where {expected_seq} was expected: lines removed or reordered")
        elif entry["prev_hash"] != prev_hash:
            problem(where, "chain break: prev_hash is not the previous entry's hash")
        if seq + 1 in checkpoints:
            met.add(seq + 1)
            if checkpoints[seq + 1] != claimed:
                problem(where, f"checkpoints/cp-{seq + 1}.txt does not match the log")
        expected_seq, prev_hash = seq + 1, claimed
    if entries is not None:
        entries.close()

    # 4. Every checkpoint was met: an export must not stop before its newest checkpoint.
    end = expected_seq or 0
    for size in sorted(set(checkpoints) - met):
        if size > end:
            problem(f"checkpoints/cp-{size}.txt", f"the export stops at size {end}: truncated")
        else:
            problem(f"checkpoints/cp-{size}.txt", "precedes the export and cannot be checked")
    if not number:
        problem("entries.jsonl", "no entries")
    if not checkpoints:
        problem("checkpoints", "no checkpoint signs this export")
    return number, len(checkpoints), max(checkpoints, default=0), end


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    export_dir, vkey = Path(argv[1]), parse_vkey(Path(argv[2]).read_text())
    entries, count, newest, end = verify(export_dir, vkey)
    for line in problems:
        print(line)
    if problems:
        print(f"FAILED: {len(problems)} problem(s)")
        return 1
    print(f"OK: {entries} entries, {count} checkpoints verified")
    if newest < end:
        print(f"note: entries {newest}..{end - 1} are chained but not yet signed by a checkpoint")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
