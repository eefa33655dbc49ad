"""`python -m mock_auth serve | token`: run the mock server, or mint one token for scripts.

`token` writes the user into the state file when there is one (so an email keeps its id across
calls and the server's JWKS has the signing key); without a state file the id is derived from the
secret and the email, and only HS256 tokens can be minted.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import uvicorn
from pydantic import ValidationError

from mock_auth import tokens
from mock_auth.app import create_app
from mock_auth.config import Mode, Settings
from mock_auth.store import Store, User, derived_id, now


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mock_auth", description="A Better Auth stand-in for local development."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the mock Better Auth server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, help="default: the port of BETTER_AUTH_URL")
    serve.add_argument("--mode", choices=get_args(Mode), help="JWT format (MOCK_AUTH_MODE)")
    serve.add_argument("--state-file", type=Path, help="MOCK_AUTH_STATE_FILE")

    token = commands.add_parser("token", help="print a token for a user")
    token.add_argument("--email", required=True)
    token.add_argument("--name", help="default: the part of the email before @")
    token.add_argument("--mode", choices=get_args(Mode), help="JWT format (MOCK_AUTH_MODE)")
    token.add_argument("--lifetime", type=int, help="seconds (MOCK_AUTH_JWT_LIFETIME_SECONDS)")
    token.add_argument(
        "--broken", choices=tokens.BROKEN_KINDS, help="mint a token a verifier must reject"
    )
    token.add_argument("--state-file", type=Path, help="MOCK_AUTH_STATE_FILE")
    token.add_argument("--json", action="store_true", help='print {"token": ..., "user_id": ...}')
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "mock_auth_mode": args.mode,
        "mock_auth_state_file": args.state_file,
        "mock_auth_jwt_lifetime_seconds": getattr(args, "lifetime", None),
    }
    return Settings(**{name: value for name, value in overrides.items() if value is not None})


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    port = args.port or settings.port
    print(
        f"mock_auth: {settings.mock_auth_mode} tokens, Better Auth API at "
        f"http://{args.host}:{port}/api/auth",
        file=sys.stderr,
    )
    uvicorn.run(create_app(settings), host=args.host, port=port)
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    email = args.email.strip().lower()
    name = args.name or email.partition("@")[0]
    user_id = derived_id(settings.secret, email)
    state_file = settings.mock_auth_state_file
    if state_file is None and settings.mock_auth_mode == "eddsa":
        print(
            "mock_auth: eddsa tokens need --state-file (or MOCK_AUTH_STATE_FILE) shared with the"
            " server, so that its JWKS publishes the signing key",
            file=sys.stderr,
        )
        return 2
    store = Store(state_file) if state_file else None
    if store:
        user = store.ensure_user(email=email, name=name, user_id=user_id)
    else:
        created = now()
        user = User(id=user_id, name=name, email=email, created_at=created, updated_at=created)
    token = tokens.mint(
        user,
        mode=settings.mock_auth_mode,
        secret=settings.secret,
        origin=settings.origin,
        key=store.signing_key() if store else None,
        lifetime=settings.mock_auth_jwt_lifetime_seconds,
        broken=args.broken,
    )
    print(json.dumps({"token": token, "user_id": user.id}) if args.json else token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        # Field names and reasons only: the input may be the secret.
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]).upper()
            print(f"mock_auth: {field}: {error['msg']}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args, settings)
    return _token(args, settings)
