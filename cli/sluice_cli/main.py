"""The `sluice` command: developer and operator tool.

sluice preview PATH... [--max-tokens N] [--overlap N] [--min-tokens N] [--json] [--full]
sluice local up [--port 4566]
sluice local outputs [--json]
sluice local demo [--port N] [--serve]
sluice status [--local | --stack NAME] [--json]
sluice search QUERY [--local | --stack NAME] [--top-k N] [--as PRINCIPAL ...] [--json]
sluice ask QUESTION [--local | --stack NAME] [--top-k N] [--filter KEY=VALUE ...] [--as PRINCIPAL ...]
           [--model ID] [--json]
sluice verify [--local | --stack NAME] [--keep] [--timeout SECONDS] [--json]
sluice redrive [--sink ingest|kb|kendra] [--local | --stack NAME]
sluice reconcile [--local | --stack NAME] [--dry-run] [--json]
sluice connector run NAME [--local | --stack NAME] [--json]
sluice finetune INPUT.json [--local | --stack NAME] [--name NAME] [--poll-seconds N] [--no-wait]
sluice backfill [--local | --stack NAME] [--prefix P] [--rate DOCS_PER_SECOND] [--manifest S3_URI] [--dry-run]
                [--name NAME] [--redrive EXECUTION_ARN] [--no-wait] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sluice.pipeline.chunk import ChunkSettings
from sluice.pipeline.process import PipelineSettings


def _preview(args: argparse.Namespace) -> int:
    from sluice_cli.preview import run_preview

    try:
        chunking = ChunkSettings(
            max_tokens=args.max_tokens,
            overlap_tokens=args.overlap,
            min_tokens=args.min_tokens,
            breadcrumb=args.breadcrumb,
        )
    except ValueError as exc:
        sys.stderr.write(f"sluice preview: {exc}\n")
        return 2
    return run_preview(
        [Path(p) for p in args.paths],
        PipelineSettings(chunking=chunking),
        as_json=args.json,
        show_text=args.full,
        out=sys.stdout,
    )


def _local_up(args: argparse.Namespace) -> int:
    from sluice_local.stack import LocalStack, find_root, port_is_free

    if not port_is_free(args.port):
        sys.stderr.write(f"sluice local up: port {args.port} is taken (is a stack already running?)\n")
        return 2
    stack = LocalStack(find_root(), port=args.port)
    stack.start()
    try:
        outputs = stack.outputs()
        print(f"Sluice local stack {stack.stack_name} at {stack.endpoint}")
        for name, value in outputs.items():
            print(f"  {name:<28} {value}")
        print(f"  not emulated: {', '.join(stack.skipped)}")
        print(f"  function logs: {stack.state_dir / 'logs'}/")
        print("Drop a file in:")
        print(f"  aws --endpoint-url {stack.endpoint} s3 cp FILE s3://{outputs['RawBucketName']}/")
        print("  sluice status --local")
        print("Ctrl-C stops the stack.")
        sys.stdout.flush()
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stack.stop()
    return 0


def _local_outputs(args: argparse.Namespace) -> int:
    from sluice_local.stack import StackState, state_dir

    try:
        state = StackState.read(state_dir())
    except FileNotFoundError as exc:
        sys.stderr.write(f"sluice local outputs: {exc}\n")
        return 1
    if args.json:
        print(json.dumps(state.outputs))
    else:
        for name, value in state.outputs.items():
            print(f"{name:<28} {value}")
    return 0


def _local_demo(args: argparse.Namespace) -> int:
    from sluice_cli.demo import main as demo_main
    from sluice_local.stack import find_root

    return demo_main(find_root(), port=args.port, serve=args.serve)


Clients = Callable[[str], Any]


def _on_stack(command: str, run: Callable[[argparse.Namespace, dict[str, str], Clients], int]) -> Callable[..., int]:
    """A command that works on a stack: the running local stack (whose Bedrock and Kendra are the
    emulators, installed in this process too) or a deployed one, by name."""

    def on_stack(args: argparse.Namespace) -> int:
        if not args.local:
            import boto3

            from sluice_cli.status import stack_outputs

            client = boto3.session.Session().client
            return run(args, stack_outputs(args.stack, client), client)
        from sluice_local.emulators import install
        from sluice_local.stack import EMULATOR_DIR, StackState, state_dir

        try:
            state = StackState.read(state_dir())
        except FileNotFoundError as exc:
            sys.stderr.write(f"sluice {command}: {exc}\n")
            return 1
        # the emulated services read the chunks from the local stack's S3, as AWS's read from S3
        emulator_dir = Path(state.emulator_dir) if state.emulator_dir else state_dir() / EMULATOR_DIR
        install(emulator_dir, s3=state.client("s3"))
        return run(args, state.outputs, state.client)

    return on_stack


def _status(args: argparse.Namespace, outputs: dict[str, str], client: Clients) -> int:
    from sluice_cli import status

    status.render(status.collect(outputs, client), sys.stdout, as_json=args.json)
    return 0


def _search(args: argparse.Namespace, outputs: dict[str, str], client: Clients) -> int:
    from sluice_cli import search

    if not (outputs.get("KnowledgeBaseId") or outputs.get("KendraIndexId")):
        sys.stderr.write("sluice search: this stack has no sink (deploy with KnowledgeBaseMode=create)\n")
        return 1
    try:
        hits = search.search(outputs, client, args.query, args.top_k, principals=args.principals)
    except ValueError as exc:
        sys.stderr.write(f"sluice search: {exc}\n")
        return 2
    search.render(args.query, hits, sys.stdout, as_json=args.json)
    return 0


def _ask(args: argparse.Namespace, outputs: dict[str, str], client: Clients) -> int:
    from sluice_cli import ask

    try:
        filters = ask.parse_filters(args.filter)
        answer = ask.ask(
            outputs,
            client,
            args.question,
            top_k=args.top_k,
            filters=filters,
            principals=args.principals,
            model=args.model,
        )
    except ValueError as exc:
        sys.stderr.write(f"sluice ask: {exc}\n")
        return 2
    except ask.AskError as exc:
        sys.stderr.write(f"sluice ask: {exc}\n")
        return 1
    ask.render(answer, sys.stdout, as_json=args.json)
    return 0


def _verify(args: argparse.Namespace, outputs: dict[str, str], client: Clients) -> int:
    from sluice_cli import verify

    timeout = args.timeout if args.timeout is not None else (60.0 if args.local else 900.0)
    if not args.json:
        where = "the local stack" if args.local else f"stack {args.stack}"
        print(f"sluice verify: {where}, each step within {timeout:.0f} s")
    results = verify.verify(
        outputs,
        client,
        timeout=timeout,
        poll=0.5 if args.local else 5.0,
        keep=args.keep,
        on_step=None if args.json else verify.printer(sys.stdout),
    )
    if args.json:
        print(verify.to_json(results))
    else:
        print("verified: every step passed" if verify.passed(results) else "NOT verified: see the failed step")
    return 0 if verify.passed(results) else 1


def _principal(text: str) -> str:
    from sluice.access import principal

    try:
        return principal(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _as(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--as",
        dest="principals",
        action="append",
        type=_principal,
        default=[],
        metavar="PRINCIPAL",
        help="only what this principal may read: user:alice@example.com or group:finance (repeatable)",
    )


def _redrive(args: argparse.Namespace, outputs: dict[str, str], client: Clients) -> int:
    from sluice_cli.repair import redrive

    return redrive(outputs, client, args.sink, sys.stdout)


def _reconcile(args: argparse.Namespace, outputs: dict[str, str], client: Clients) -> int:
    from sluice_cli import reconcile

    report: Any
    try:
        if args.local:
            from sluice_local.stack import StackState, state_dir

            environments = StackState.read(state_dir()).environments
            report = reconcile.run_here(environments["ReconcileFunction"], client, dry_run=args.dry_run)
        else:
            report = reconcile.run_deployed(outputs, client, dry_run=args.dry_run)
    except (LookupError, KeyError) as exc:
        sys.stderr.write(f"sluice reconcile: {exc}\n")
        return 1
    if args.json:
        print(json.dumps(report if isinstance(report, dict) else report.to_json()))
    else:
        reconcile.render(report, sys.stdout)
    return 0


def _finetune(args: argparse.Namespace, outputs: dict[str, str], client: Clients) -> int:
    from sluice_cli import finetune

    try:
        payload = json.loads(Path(args.input).read_text())
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"sluice finetune: {args.input}: {exc}\n")
        return 2
    if args.poll_seconds is not None:
        payload["poll_seconds"] = args.poll_seconds
    try:
        return finetune.run_input(outputs, client, payload, sys.stdout, name=args.name, wait=not args.no_wait)
    except LookupError as exc:
        sys.stderr.write(f"sluice finetune: {exc}\n")
        return 1


def _backfill(args: argparse.Namespace, outputs: dict[str, str], client: Clients) -> int:
    from sluice_cli import backfill

    try:
        if args.redrive:
            client("stepfunctions").redrive_execution(executionArn=args.redrive)
            arn = args.redrive
        else:
            payload = backfill.request(args.prefix, args.rate, args.dry_run, args.manifest, args.kb_sync_mode)
            arn = backfill.start(outputs, client, payload, name=args.name)
    except (ValueError, LookupError) as exc:
        sys.stderr.write(f"sluice backfill: {exc}\n")
        return 2 if isinstance(exc, ValueError) else 1
    if not args.json:
        print(f"backfill {'redriven' if args.redrive else 'started'}: {arn}")
    if args.no_wait:
        if not args.json:
            print("follow it with `sluice status` or in the Step Functions console")
        else:
            print(json.dumps({"execution_arn": arn}))
        return 0
    poll = backfill.POLL_LOCAL if args.local else backfill.POLL_DEPLOYED
    found = backfill.follow(outputs, client, arn, None if args.json else sys.stdout, timeout=args.timeout, poll=poll)
    if args.json:
        print(json.dumps(found.to_json()))
    else:
        backfill.render(found, sys.stdout)
    return 0 if found.status == "SUCCEEDED" else 1


def _connector_run(args: argparse.Namespace, outputs: dict[str, str], client: Clients) -> int:
    from sluice_cli import connectors

    if "ConnectorStateTableName" not in outputs:
        sys.stderr.write("sluice connector: this stack has no connectors (ConnectorStateTableName output)\n")
        return 1
    if args.local:
        runs = [r.to_json() for r in connectors.run_here(outputs, client, args.name)]
    else:
        runs = connectors.run_deployed(outputs, client, args.name)
    if not runs:
        sys.stderr.write(f"sluice connector: no instance or type named {args.name!r} in the configuration\n")
        return 1
    if args.json:
        print(json.dumps(runs))
    else:
        connectors.render_runs(runs, sys.stdout)
    return 1 if any(r["stopped"] in ("error", "busy") for r in runs) else 0


def _where(command: argparse.ArgumentParser) -> None:
    where = command.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="the running local stack")
    where.add_argument("--stack", default="sluice", help="a deployed stack's name (default: sluice)")


def parser() -> argparse.ArgumentParser:
    defaults = ChunkSettings()
    top = argparse.ArgumentParser(prog="sluice", description="Sluice developer and operator tool.")
    commands = top.add_subparsers(dest="command", required=True)

    preview = commands.add_parser("preview", help="extract, clean and chunk local files; no AWS involved")
    preview.add_argument("paths", nargs="+", metavar="PATH")
    preview.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    preview.add_argument("--overlap", type=int, default=-1, help="overlap tokens (default: max-tokens / 8)")
    preview.add_argument("--min-tokens", type=int, default=-1, help="default: max-tokens / 4")
    preview.add_argument("--breadcrumb", action="store_true", help="start chunks with their heading path")
    preview.add_argument("--json", action="store_true", help="one JSON object per input per line")
    preview.add_argument("--full", action="store_true", help="print whole chunks, not their first line")
    preview.set_defaults(run=_preview)

    local = commands.add_parser("local", help="the local stack (moto, no AWS account, no Docker)")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    up = local_commands.add_parser("up", help="run the local stack in the foreground")
    up.add_argument("--port", type=int, default=4566)
    up.set_defaults(run=_local_up)
    outputs = local_commands.add_parser("outputs", help="the running local stack's Outputs")
    outputs.add_argument("--json", action="store_true")
    outputs.set_defaults(run=_local_outputs)
    demo = local_commands.add_parser("demo", help="ingest the samples end to end and report")
    demo.add_argument("--port", type=int, default=None, help="default 4566 when free, else any free port")
    demo.add_argument("--serve", action="store_true", help="keep the stack up afterwards")
    demo.set_defaults(run=_local_demo)

    status = commands.add_parser("status", help="documents by status, quarantined files, sinks, queue depths")
    _where(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_on_stack("status", _status))

    search = commands.add_parser("search", help="what the knowledge base and the Kendra index answer")
    search.add_argument("query")
    _where(search)
    search.add_argument("--top-k", type=int, default=5, help="hits per sink (default 5)")
    _as(search)
    search.add_argument("--json", action="store_true")
    search.set_defaults(run=_on_stack("search", _search))

    ask = commands.add_parser("ask", help="the knowledge base's answer to a question, with its sources")
    ask.add_argument("question")
    _where(ask)
    ask.add_argument("--top-k", type=int, default=5, help="chunks the answer may use (default 5)")
    ask.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE", help="only chunks whose attribute equals"
    )
    _as(ask)
    ask.add_argument("--model", help="generation model, inference profile or ARN (default: the stack's)")
    ask.add_argument("--json", action="store_true", help="the answer, each cited span and its sources")
    ask.set_defaults(run=_on_stack("ask", _ask))

    check = commands.add_parser("verify", help="prove the stack works on its account: a canary, end to end")
    _where(check)
    check.add_argument("--keep", action="store_true", help="leave the canary and what it made")
    check.add_argument("--timeout", type=float, help="seconds each wait may take (default 900; 60 locally)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(run=_on_stack("verify", _verify))

    redrive = commands.add_parser("redrive", help="dead letters back to their queues, failed documents again")
    redrive.add_argument("--sink", choices=["ingest", "kb", "kendra"], help="one queue only (default: all)")
    _where(redrive)
    redrive.set_defaults(run=_on_stack("redrive", _redrive))

    reconcile = commands.add_parser(
        "reconcile", help="RawBucket vs registry vs processed files vs each index; repair the drift"
    )
    _where(reconcile)
    reconcile.add_argument("--dry-run", action="store_true", help="find and report; change nothing")
    reconcile.add_argument("--json", action="store_true", help="the report as JSON")
    reconcile.set_defaults(run=_on_stack("reconcile", _reconcile))

    connector = commands.add_parser("connector", help="connector syncs")
    connector_commands = connector.add_subparsers(dest="connector_command", required=True)
    connector_run = connector_commands.add_parser("run", help="sync one instance (or every instance of a type) now")
    connector_run.add_argument("name", help="an instance name from the configuration, or a connector type")
    _where(connector_run)
    connector_run.add_argument("--json", action="store_true")
    connector_run.set_defaults(run=_on_stack("connector run", _connector_run))

    finetune = commands.add_parser("finetune", help="start the fine-tune workflow with an input and follow it")
    finetune.add_argument("input", metavar="INPUT.json", help="a console input, e.g. events/finetune_corpus.json")
    _where(finetune)
    finetune.add_argument("--name", help="the execution's name (it names the Bedrock job; default: generated)")
    finetune.add_argument("--poll-seconds", type=int, help="override the input's wait between two job checks")
    finetune.add_argument("--no-wait", action="store_true", help="start it and return (follow it in the console)")
    finetune.set_defaults(run=_on_stack("finetune", _finetune))

    backfill = commands.add_parser(
        "backfill", help="ingest what RawBucket already holds: its listing or an S3 Inventory, at a set rate"
    )
    _where(backfill)
    backfill.add_argument("--prefix", default="", help="only keys under this prefix (default: the whole bucket)")
    backfill.add_argument("--rate", type=float, help="rechecks queued per second, at most (default: the plan's, 10)")
    backfill.add_argument("--manifest", metavar="S3_URI", help="an S3 Inventory manifest.json instead of a listing")
    backfill.add_argument("--dry-run", action="store_true", help="count what it would queue; queue nothing")
    backfill.add_argument(
        "--kb-sync-mode",
        choices=["ingestion-job", "direct"],
        help="hold the knowledge base's sync mode while the run goes on (ingestion-job: a large backfill's "
        "chunks go by coalesced ingestion jobs); the stack's mode comes back about 30 minutes after the run",
    )
    backfill.add_argument("--name", help="the execution's name (default: generated)")
    backfill.add_argument("--redrive", metavar="EXECUTION_ARN", help="go on with a failed or stopped backfill")
    backfill.add_argument("--no-wait", action="store_true", help="start it and return")
    backfill.add_argument("--timeout", type=float, default=86400.0, help="stop following after this many seconds")
    backfill.add_argument("--json", action="store_true")
    backfill.set_defaults(run=_on_stack("backfill", _backfill))
    return top


def _stop_on_sigterm() -> None:
    """`kill` stops a foreground stack as Ctrl-C does: workers stopped, state file removed."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _stop_on_sigterm()
    try:
        return int(args.run(args))
    except BrokenPipeError:  # `sluice preview ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
