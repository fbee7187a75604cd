#!/usr/bin/env python3
"""The rotation script a team might write instead of running netsuite-token-rotator: the peer
that scripts/bench-python-peer.sh measures the rotator against (see docs/performance.md).

For each integration in the list, one rotation with the five steps of the rotator, against
NetSuite or netsuite-sim:
  1. issue    GET /rest/issuetoken with the NLAuth header;
  2. stage    the new token written as `pending` into the integration's JSON file;
  3. verify   GET /rest/tokeninfo signed (OAuth 1.0, HMAC-SHA256, realm = account) with the new
              token, and its company id compared with the account;
  4. promote  `pending` becomes `current`, the old `current` becomes `previous`;
  5. revoke   GET /rest/revoketoken signed with the previous token, which is then marked revoked.
Every write of the JSON file is atomic and durable: a temp file beside it, written, fsynced,
renamed over it, and the directory fsynced. Integrations are rotated by a pool of threads (four
by default), each with its own requests session (kept-alive connections, as the rotator's HTTP
client keeps them).

Usage: rotate.py --base URL --integrations FILE --store DIR [--threads 4]
FILE is a JSON list of objects with name, account, consumer_key, consumer_secret, email,
password and role. Prints one line per integration (no secret), and exits 1 if any failed.
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import requests
from requests_oauthlib import OAuth1

TIMEOUT = 30
local = threading.local()


def session():
    if not hasattr(local, "session"):
        local.session = requests.Session()
    return local.session


def enc(value):
    """RFC 3986 percent-encoding, as NLAuth header values need."""
    return quote(value, safe="-._~")


def nlauth(integration):
    return (
        f"NLAuth nlauth_account={enc(integration['account'])}, "
        f"nlauth_email={enc(integration['email'])}, "
        f"nlauth_signature={enc(integration['password'])}, "
        f"nlauth_role={enc(integration['role'])}"
    )


def oauth(integration, token):
    return OAuth1(
        integration["consumer_key"],
        client_secret=integration["consumer_secret"],
        resource_owner_key=token["token_id"],
        resource_owner_secret=token["token_secret"],
        signature_method="HMAC-SHA256",
        realm=integration["account"],
    )


def read_state(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def write_atomic(path, state):
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def lower_keys(body):
    return {key.lower(): value for key, value in body.items()}


def rotate(base, store, integration):
    path = os.path.join(store, integration["name"] + ".json")
    state = read_state(path)
    rotation_id = str(uuid.uuid4())
    http = session()

    # 1. issue
    answer = http.get(
        f"{base}/rest/issuetoken",
        params={"consumerKey": integration["consumer_key"], "name": f"rotator-{rotation_id}"},
        headers={"Authorization": nlauth(integration)},
        timeout=TIMEOUT,
    )
    answer.raise_for_status()
    issued = lower_keys(answer.json())
    token = {
        "account_id": integration["account"],
        "realm": integration["account"],
        "token_id": issued["tokenid"],
        "token_secret": issued["tokensecret"],
        "issued_at": now(),
        "rotation_id": rotation_id,
    }

    # 2. stage
    state["pending"] = token
    write_atomic(path, state)

    # 3. verify
    answer = http.get(f"{base}/rest/tokeninfo", auth=oauth(integration, token), timeout=TIMEOUT)
    answer.raise_for_status()
    info = lower_keys(answer.json())
    if str(info.get("companyid", "")).upper() != integration["account"].upper():
        raise RuntimeError(f"tokeninfo reports company {info.get('companyid')!r}")

    # 4. promote
    previous = state.get("current")
    state["previous"] = previous and {"token": previous, "revoked_at": None}
    state["current"] = token
    del state["pending"]
    write_atomic(path, state)

    # 5. revoke
    if previous:
        answer = http.get(
            f"{base}/rest/revoketoken",
            params={"consumerKey": integration["consumer_key"], "token": previous["token_id"]},
            auth=oauth(integration, previous),
            timeout=TIMEOUT,
        )
        answer.raise_for_status()
        state["previous"]["revoked_at"] = now()
        write_atomic(path, state)
    return token["token_id"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--integrations", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with open(args.integrations) as f:
        integrations = json.load(f)
    os.makedirs(args.store, mode=0o700, exist_ok=True)

    def one(integration):
        try:
            token_id = rotate(args.base.rstrip("/"), args.store, integration)
            return f"{integration['name']}: rotated (token {token_id[:8]}...)"
        except Exception as err:  # one line per failed integration, the others go on
            # Not the message: a URL in it would carry the consumer key and token id.
            status = getattr(getattr(err, "response", None), "status_code", None)
            return f"{integration['name']}: failed: {type(err).__name__} (status {status})"

    failed = 0
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        for line in pool.map(one, integrations):
            failed += ": failed: " in line
            print(line)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
