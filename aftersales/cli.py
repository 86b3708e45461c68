"""The `aftersales` command: the embedded stack, the separate processes, admin tasks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

import click

from aftersales.settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _check_policy(settings: Settings) -> None:
    """Stop at start, naming the line, when the SLA policy or the routing file is
    wrong."""
    from aftersales.policy import PolicyError, load_policy
    from aftersales.routing import load_routing

    try:
        policy = load_policy(settings.sla_file)
        load_routing(settings.routing_file, policy.calendars)
    except PolicyError as err:
        raise click.ClickException(str(err)) from err


@click.group()
def main() -> None:
    """Aftersales: complaint and after-sales cases as durable workflows."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                        "%(message)s")
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Web app address.")
@click.option("--port", default=5000, show_default=True, help="Web app port.")
@click.option("--temporal-port", default=7233, show_default=True,
              help="Port of the embedded Temporal dev server.")
@click.option("--data-dir", default=None, help="Where state lives [default: ./var].")
@click.option("--demo", is_flag=True, help="Seed demo users and cases.")
def dev(host: str, port: int, temporal_port: int, data_dir: str | None, demo: bool) -> None:
    """Run everything on this machine: Temporal, worker, web app, simulators."""
    from aftersales.devstack import DevStack

    settings = _settings()
    if demo and settings.routing_file is None:
        from aftersales.demo import demo_routing_file

        # The demo's teams, so its cases arrive assigned (docs/teams.md).
        settings = settings.with_(routing_file=demo_routing_file())
    _check_policy(settings)
    if data_dir:
        settings = settings.with_(data_dir=data_dir)
    stack = DevStack(settings, host=host, port=port, temporal_port=temporal_port,
                     data_dir_given=data_dir is not None)
    sys.exit(stack.run(demo=demo))


@main.command()
def worker() -> None:
    """Run a worker: case workflows and their activities."""
    from aftersales.worker import run_worker

    asyncio.run(run_worker(_settings()))


@main.command()
@click.option("--run", "run_job", default=None, metavar="JOB",
              help="Run this one job now (under its lease), print what it did, and exit "
                   "(docs/operations.md lists the jobs).")
def scheduler(run_job: str | None) -> None:
    """Run the housekeeping scheduler (its own process; never inside the web app)."""
    from aftersales.scheduler import JOBS, run_once, run_scheduler

    if run_job is not None and run_job not in JOBS:
        raise click.BadParameter(f"{run_job!r} is not a job: {', '.join(sorted(JOBS))}",
                                 param_hint="--run")
    if run_job:
        click.echo(run_once(_settings(), run_job))
        return
    run_scheduler(_settings())


@main.command("mail-in")
@click.option("--smtp", is_flag=True,
              help="Also receive mail by SMTP on AFTERSALES_MAIL_IN_HOST:PORT (development).")
def mail_in(smtp: bool) -> None:
    """Read inbound mail into cases: poll AFTERSALES_IMAP_URL (its own process)."""
    settings = _settings()
    from db.engine import migrate as run_migrations

    run_migrations(settings.database_url)
    # The router belongs to the web package (it opens cases as the pages do).
    os.execv(sys.executable, [sys.executable, "-m", "web.mailroute",
                              *(["--smtp"] if smtp else [])])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--threads", default=16, show_default=True, help="Threads per worker.")
def web(host: str, port: int, workers: int, threads: int) -> None:
    """Run the web app (REST API, status links, health) under gunicorn."""
    settings = _settings()
    try:
        settings.check_secret_key()
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    _check_policy(settings)
    from aftersales.temporal import warn_without_payload_keys
    from db.engine import migrate as run_migrations

    warn_without_payload_keys(settings)
    run_migrations(settings.database_url)  # once, before the workers start
    click.echo(f"web app listening on http://{host}:{port}")
    os.execv(sys.executable, [
        sys.executable, "-m", "gunicorn", "web.wsgi:app",
        "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", str(threads),
        "--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "10",
        "--log-level", "warning",
    ])


@main.group()
def users() -> None:
    """Manage staff accounts."""


@users.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["handler", "supervisor", "admin"]), required=True)
@click.option("--password", default=None, help="Password for the web login.")
@click.option("--email", default="", help="Where the user's notifications go.")
@click.option("--locale", type=click.Choice(["", "zh-CN", "en"]), default="",
              help="Language of the user's notifications (default: AFTERSALES_DEFAULT_LOCALE).")
@click.option("--display-name", default="",
              help="How customers see the user on replies (default: Customer service).")
@click.option("--team", "teams", multiple=True,
              help="A team the user is in (repeat for several; docs/teams.md).")
def users_create(name: str, role: str, password: str | None, email: str, locale: str,
                 display_name: str, teams: tuple[str, ...]) -> None:
    """Create a staff user."""
    from db.accounts import AccountError, create_user

    sessions = _sessions()
    try:
        with sessions.begin() as session:
            create_user(session, name, role, password, email=email, locale=locale,
                        display_name=display_name, teams=teams)
    except AccountError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"created {role} {name}" + (f" in {', '.join(teams)}" if teams else ""))


# Who the command line acts as on a case's timeline and in the audit log.
CLI_ACTOR = ("system", "admin")


def _audit_cli(sessions, action: str, words: str) -> None:
    """The command line's account changes go into the audit log as the pages' do."""
    from db.auditlog import record

    with sessions.begin() as session:
        record(session, actor=CLI_ACTOR[0], role=CLI_ACTOR[1], method="CLI",
               path=f"aftersales {words}", status=0, action=action)


@users.command("deactivate")
@click.argument("name")
def users_deactivate(name: str) -> None:
    """Deactivate user NAME: their sign-in sessions end and their tokens stop at once,
    their open cases go back to the unassigned queue, and the supervisors are told."""
    from aftersales.access import deactivate, return_cases_through_temporal
    from db.accounts import AccountError
    from workflows.case.contracts import Actor

    settings = _settings()
    sessions = _sessions()
    try:
        done = deactivate(settings, sessions, name, Actor(*CLI_ACTOR),
                          return_cases_through_temporal(settings))
    except AccountError as err:
        raise click.ClickException(str(err)) from err
    _audit_cli(sessions, "users.deactivate", f"users deactivate {name}")
    click.echo(f"deactivated {name}: sessions ended, tokens stopped; "
               f"{len(done.returned)} open case(s) back in the queue")
    for case_id, why in sorted(done.failed.items()):
        click.echo(f"not returned: {case_id}: {why} (reassign it on the console)", err=True)
    if done.failed:
        sys.exit(1)


@users.command("activate")
@click.argument("name")
def users_activate(name: str) -> None:
    """Activate user NAME again (sign-in and tokens work again; ended sessions stay
    ended, and their cases stay where they went)."""
    from db.accounts import AccountError, set_active

    sessions = _sessions()
    try:
        with sessions.begin() as session:
            set_active(session, name, True)
    except AccountError as err:
        raise click.ClickException(str(err)) from err
    _audit_cli(sessions, "users.activate", f"users activate {name}")
    click.echo(f"activated {name}")


@users.command("set-password")
@click.argument("name")
def users_set_password(name: str) -> None:
    """Set user NAME's password (asked twice at a terminal; else the first line of
    standard input). Every sign-in session of the user ends."""
    from db.accounts import AccountError, set_password

    if sys.stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    sessions = _sessions()
    try:
        with sessions.begin() as session:
            set_password(session, name, password)
    except AccountError as err:
        raise click.ClickException(str(err)) from err
    _audit_cli(sessions, "users.set-password", f"users set-password {name}")
    click.echo(f"password of {name} set; their sign-in sessions have ended")


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.argument("name")
@click.option("--expires", default=None, metavar="DURATION",
              help="Stop working after this long (like 90d, 12h); default: never.")
def token_create(name: str, expires: str | None) -> None:
    """Create an API token for user NAME; the token is the last word printed."""
    from datetime import timedelta

    from db.accounts import AccountError, create_token, find_token
    from workflows.sla import parse_duration

    expires_in = None
    if expires is not None:
        try:
            expires_in = timedelta(seconds=parse_duration(expires))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--expires") from err
        if expires_in <= timedelta(0):
            raise click.BadParameter("a token must live longer than that",
                                     param_hint="--expires")
    sessions = _sessions()
    try:
        with sessions.begin() as session:
            value = create_token(session, name, expires_in)
            row = find_token(session, value)
            assert row is not None
            token_id, until = row.id, row.expires_at
    except AccountError as err:
        raise click.ClickException(str(err)) from err
    _audit_cli(sessions, "tokens.create", f"token create {name} ({token_id})")
    lasts = f"expires {_when(until)}" if until else "does not expire"
    click.echo(f"API token {token_id} for {name}, {lasts}: {value}")


@token.command("list")
@click.argument("name")
def token_list(name: str) -> None:
    """List user NAME's tokens: id, created, expires, last used, state (never the
    token itself)."""
    from db.accounts import get_user, list_tokens, token_state

    with _sessions()() as session:
        if get_user(session, name) is None:
            raise click.ClickException(f"no user '{name}'")
        rows = list_tokens(session, name)
    if not rows:
        click.echo(f"{name} has no tokens")
        return
    click.echo(f"{'id':<12} {'created':<17} {'expires':<17} {'last used':<17} state")
    for row in rows:
        click.echo(f"{row.id:<12} {_when(row.created_at):<17} {_when(row.expires_at):<17} "
                   f"{_when(row.last_used_at):<17} {token_state(row)}")


@token.command("revoke")
@click.argument("token_or_id", metavar="TOKEN-OR-ID")
def token_revoke(token_or_id: str) -> None:
    """Revoke a token, given itself or its id: it stops working at once."""
    from db.accounts import AccountError, revoke_token

    sessions = _sessions()
    try:
        with sessions.begin() as session:
            row = revoke_token(session, token_or_id.strip())
            token_id, owner = row.id, row.user_name
    except AccountError as err:
        raise click.ClickException(str(err)) from err
    _audit_cli(sessions, "tokens.revoke", f"token revoke {token_id}")
    click.echo(f"revoked token {token_id} of {owner}")


def _when(value) -> str:
    """A stored time for a listing, in UTC to the minute; '-' for none."""
    if value is None:
        return "-"
    from db.cases import as_utc

    return as_utc(value).strftime("%Y-%m-%d %H:%MZ")


@main.group()
def cases() -> None:
    """Cases the read model could not take (docs/operations.md)."""


@cases.command("failed")
def cases_failed() -> None:
    """List the cases whose projection write the read model refused for good."""
    from db.projection_failures import failed_cases

    with _sessions()() as session:
        rows = failed_cases(session)
        for row in rows:
            click.echo(f"{row.case_id}  version {row.version}  {row.failures} failed since "
                       f"{row.first_failed_at:%Y-%m-%d %H:%M}Z  {row.error}")
    if not rows:
        click.echo("no case is waiting to be written")


@cases.command("reproject")
@click.argument("case_ids", nargs=-1, metavar="[CASE_ID]...")
@click.option("--all-failed", is_flag=True, help="Every case `cases failed` lists.")
def cases_reproject(case_ids: tuple[str, ...], all_failed: bool) -> None:
    """Write cases to the read model again from their workflows, once the cause of a
    refused write is removed; exits non-zero if any still fails."""
    from aftersales.reconcile import reproject
    from aftersales.temporal import connect
    from db.links import LinkSeal
    from db.projection_failures import describe, failed_cases

    sessions = _sessions()
    wanted = list(case_ids)
    if all_failed:
        with sessions() as session:
            wanted += [row.case_id for row in failed_cases(session) if row.case_id not in
                       wanted]
    if not wanted:
        raise click.UsageError("name the cases, or --all-failed")

    settings = _settings()
    try:
        settings.check_secret_key()  # the links are written sealed with it
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    links = LinkSeal(settings.secret_key)

    async def run() -> int:
        client = await connect(settings)
        failures = 0
        for case_id in wanted:
            try:
                click.echo(await reproject(client, sessions, links, case_id))
            except Exception as err:
                failures += 1
                click.echo(f"{case_id}: not written: {describe(err)}", err=True)
        return failures

    failures = asyncio.run(run())
    if failures:
        raise click.ClickException(f"{failures} of {len(wanted)} cases were not written")


@main.group()
def events() -> None:
    """Events out to other systems (AFTERSALES_EVENT_WEBHOOK_URL)."""


@events.command("status")
def events_status() -> None:
    """Each endpoint: state, events waiting, last delivery and error."""
    from aftersales.events_out import status

    urls = _settings().event_webhook_urls
    if not urls:
        click.echo("no endpoints: AFTERSALES_EVENT_WEBHOOK_URL is not set")
        return
    with _sessions()() as session:
        for e in status(session, urls):
            click.echo(f"{e['url']}  {e['state']}  backlog {e['backlog']}  last delivered "
                       f"{e['last_success_at'] or '-'}  {e['last_error'] or ''}".rstrip())


@events.command("resume")
@click.argument("url")
def events_resume(url: str) -> None:
    """Send to URL again after it answered 410 Gone, from where it stopped."""
    from aftersales.events_out import resume

    with _sessions().begin() as session:
        if not resume(session, url):
            raise click.ClickException(f"{url} is not an endpoint that was gone")
    click.echo(f"{url}: resumed; the scheduler sends its backlog within seconds")


@main.group()
def demo() -> None:
    """Look into the simulated retailer systems."""


@demo.command("orders")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def demo_orders(as_json: bool) -> None:
    """List the simulated order system's orders."""
    orders = _order_system_get("/orders")
    if as_json:
        click.echo(json.dumps(orders, ensure_ascii=False, indent=1))
        return
    for order in orders:
        skus = ", ".join(f"{line['sku']} x{line['quantity']}" for line in order["lines"])
        click.echo(f"{order['id']}  {order['customer_id']}  {order['status']:<9}  "
                   f"{order['total']:>9} {order['currency']}  {skus}")


@main.command("bench")
@click.option("--cases", default=50, show_default=True, help="Case lifecycles to run.")
@click.option("--concurrency", default=16, show_default=True)
@click.option("--url", default=None, help="Web app [default: AFTERSALES_PUBLIC_URL].")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line (always).")
@click.option("--read-model", "read_model", type=int, default=None,
              help="Instead: fill an empty read model with this many cases and time the "
                   "queries of the pages and the API.")
@click.option("--report", "report", type=int, default=None,
              help="Instead: fill an empty read model with this many cases (PostgreSQL: "
                   "the database is created if missing) and time the 30-day report "
                   "summary: the function, the API and the time inside the database.")
@click.option("--open-cases", "open_cases", type=int, default=None,
              help="Instead: open this many cases at once with live deadlines, in workers "
                   "of the bench's own, and measure their memory and how late deadlines "
                   "fire.")
@click.option("--window", default=300.0, show_default=True,
              help="With --open-cases: seconds over which the deadlines fall.")
@click.option("--worker-cache", type=int, default=None,
              help="With --open-cases: the worker's workflow cache [default: "
                   "AFTERSALES_WORKER_CACHE].")
@click.option("--workers", default=1, show_default=True,
              help="With --open-cases: worker processes on the bench's task queue.")
@click.option("--database-url", default=None,
              help="With --read-model or --report: the (empty) database [default: "
                   "AFTERSALES_DATABASE_URL]; "
                   "with --open-cases: the bench workers' read model [default: a new SQLite "
                   "file; use PostgreSQL with --workers above 1].")
def bench_command(cases: int, concurrency: int, url: str | None, as_json: bool,
                  read_model: int | None, database_url: str | None, open_cases: int | None,
                  window: float, worker_cache: int | None, workers: int,
                  report: int | None) -> None:
    """Drive full case lifecycles through the running system, and as many bare Temporal
    workflows of the same shape; the last line printed is JSON."""
    import importlib.util

    if importlib.util.find_spec("bench") is None:
        raise click.ClickException("the benchmarks (the bench/ folder) are not installed: "
                                   "run `aftersales bench` from a source checkout "
                                   "(pip install -e .)")
    settings = _settings()
    if open_cases:
        from bench.timers import run as run_timers

        run_timers(settings, open_cases, concurrency, window, database_url, worker_cache,
                   workers)
        sys.stdout.flush()
        os._exit(0)
    if read_model:
        from bench.readmodel import main as run_read_model

        run_read_model(database_url or settings.database_url, read_model)
        return
    if report:
        from bench.reports import main as run_report

        run_report(database_url or settings.database_url, report)
        return
    from bench.lifecycle import main as run_bench

    result = run_bench(settings, url or settings.public_url, cases, concurrency)
    sys.stdout.flush()
    sys.stderr.flush()
    # The result is out; leave without the interpreter's teardown, where the Temporal
    # SDK's native runtime has been seen to crash after a clean run.
    os._exit(1 if result["failures"] else 0)


@main.group()
def privacy() -> None:
    """Customers' personal data: export, erasure, retention (admin tasks)."""


@privacy.command("export")
@click.argument("customer_id")
def privacy_export(customer_id: str) -> None:
    """Print as JSON everything held about a customer."""
    from db.privacy import export_customer

    with _sessions()() as session:
        click.echo(json.dumps(export_customer(session, customer_id), ensure_ascii=False,
                              indent=1))


@privacy.command("erase")
@click.argument("customer_id")
def privacy_erase(customer_id: str) -> None:
    """Erase a customer's personal data from their (closed) cases."""
    from datetime import UTC, datetime

    from aftersales.erasure import ErasureFailed, erase_in_workflows
    from aftersales.scheduler import forget_blobs
    from db.privacy import ErasureRefused, erasable_cases, erase_customer

    freed: set[str] = set()
    sessions = _sessions()
    settings = _settings()
    try:
        with sessions() as session:
            # Refused while a case is open; the cases whose workflow may still run
            # erase their own state first, so no later write brings the data back.
            running = erasable_cases(session, customer_id)
        erase_in_workflows(settings, running, "the customer's request")
        with sessions.begin() as session:
            count = erase_customer(session, customer_id, datetime.now(UTC), freed)
    except (ErasureRefused, ErasureFailed) as err:
        raise click.ClickException(str(err)) from err
    files = forget_blobs(_settings(), sessions, freed)
    click.echo(f"erased the personal data of {customer_id} from {count} case(s), "
               f"{files} file(s) deleted")


@privacy.command("seal-links")
def privacy_seal_links() -> None:
    """Seal status links stored in the clear; with AFTERSALES_OLD_SECRET_KEY set, re-seal
    those sealed under that previous secret key with the current one."""
    from db.links import LinkSeal, seal_stored_links

    settings = _settings()
    try:
        settings.check_secret_key()
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    old_key = os.environ.get("AFTERSALES_OLD_SECRET_KEY", "")
    with _sessions().begin() as session:
        count = seal_stored_links(session, LinkSeal(settings.secret_key),
                                  LinkSeal(old_key) if old_key else None)
    click.echo(f"sealed the status links of {count} stored row(s)")


@privacy.command("anonymise")
@click.option("--older-than", default="365d", show_default=True,
              help="Closed this long ago (a duration like 90d).")
def privacy_anonymise(older_than: str) -> None:
    """Anonymise cases closed longer ago than the retention period."""
    from datetime import UTC, datetime, timedelta

    from db.privacy import anonymise_closed
    from workflows.sla import parse_duration

    try:
        seconds = parse_duration(older_than)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err
    from aftersales.scheduler import forget_blobs

    freed: set[str] = set()
    sessions = _sessions()
    with sessions.begin() as session:
        count = anonymise_closed(session, timedelta(seconds=seconds), datetime.now(UTC),
                                 freed)
    files = forget_blobs(_settings(), sessions, freed)
    click.echo(f"anonymised {count} case(s) closed more than {older_than} ago, "
               f"{files} file(s) deleted")


@main.group()
def keys() -> None:
    """Payload encryption keys."""


@keys.command("new")
@click.argument("kid")
def keys_new(kid: str) -> None:
    """Print a new key entry for AFTERSALES_PAYLOAD_KEYS (put it first to rotate)."""
    from aftersales.codec import new_key_setting

    click.echo(new_key_setting(kid))


@main.group()
def sla() -> None:
    """SLA policy files."""


@sla.command("check")
@click.argument("path", required=False)
def sla_check(path: str | None) -> None:
    """Validate a policy file (default: the shipped one) and print its effective targets."""
    from aftersales.policy import PolicyError, load_policy
    from workflows.case.vocabulary import KINDS, PRIORITIES
    from workflows.sla import format_duration as _dur

    try:
        policy = load_policy(path)
    except PolicyError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"policy {policy.source} (version {policy.version})")
    # The clocks' calendar, then the named ones teams' working hours use (docs/teams.md).
    for label, cal in [("calendar", policy.calendar),
                       *((f"calendar {name}", spec) for name, spec in policy.calendars.items())]:
        click.echo(f"{label}: {cal.timezone}, {cal.hours}, {','.join(cal.workdays)}"
                   + (f", holidays {', '.join(cal.holidays)}" if cal.holidays else ""))
    click.echo(f"{'kind':<10} {'prio':<4} {'confirm':>8} {'analyze':>8} {'resolution':>10} "
               f"{'revisit':>8}")
    for kind in KINDS:
        for priority in PRIORITIES:
            t = policy.targets_for(kind, priority)
            click.echo(f"{kind:<10} {priority:<4} {_dur(t.confirm):>8} {_dur(t.analyze):>8} "
                       f"{_dur(t.resolution):>10} {_dur(t.revisit_after):>8}")
    click.echo(f"feedback window {_dur(policy.feedback_window)}, warn at "
               f"{', '.join(f'{w:.0%}' for w in policy.warn_at)}, second escalation at "
               f"{policy.escalate_again_at:.0%}, revisit grace {_dur(policy.revisit_grace)}")
    click.echo(f"refund within {_dur(policy.refund_after_goods_received)} of goods received; "
               f"approval above {policy.approval_limit}, "
               f"{'four eyes' if policy.four_eyes else 'four eyes off'}")
    rules = policy.priority
    click.echo(f"priority: default {rules.default}, tiers {rules.tier_boost}, repeat within "
               f"{_dur(rules.repeat_window)} +{rules.repeat_boost}, escalation words "
               f"+{rules.escalation_boost}, amounts {rules.amount_boost}")


@demo.command("refunds")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def demo_refunds(as_json: bool) -> None:
    """List the refunds the simulated payment side has paid."""
    refunds = _order_system_get("/refunds")
    if as_json:
        click.echo(json.dumps(refunds, ensure_ascii=False, indent=1))
        return
    for refund in refunds:
        click.echo(f"{refund['id']}  {refund['order_id']}  {refund['amount']:>9}  "
                   f"case {refund['case_id']}  key {refund['idempotency_key']}")


@main.group()
def triage() -> None:
    """The triage model: suggestions from the customer's words (docs/triage.md)."""


@triage.command("train")
@click.option("--include-feedback", is_flag=True,
              help="Also train on the kinds and root causes handlers decided (read model).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Model file to write [default: AFTERSALES_TRIAGE_MODEL or the shipped one].")
@click.option("--force", is_flag=True,
              help="With --include-feedback: switch the new model in even if it scores worse.")
def triage_train(include_feedback: bool, out: str | None, force: bool) -> None:
    """Train on the shipped data set, print held-out figures, write a versioned model file."""
    from pathlib import Path

    from activities.triage import model_path
    from activities.triage.training import describe, train

    settings = _settings()
    target = Path(out).resolve() if out else model_path(settings.triage_model)
    pairs = None
    if include_feedback:
        from db.triage import feedback_pairs

        with _sessions()() as session:
            pairs = feedback_pairs(session)
        click.echo(f"{len(pairs)} handler decision(s) in the read model")
    # Compared with the file being replaced, or else with the model the system uses now.
    current = target if target.exists() else model_path(settings.triage_model)
    report = train(target, pairs, current=current, force=force)
    click.echo(describe(report))


@triage.command("suggest")
@click.argument("description")
@click.option("--channel", default="", help="Where the description came from.")
def triage_suggest(description: str, channel: str) -> None:
    """Print the model's suggestions for DESCRIPTION as JSON."""
    from activities.triage import model_path
    from activities.triage.model import shared_model
    from db.cases import jsonable

    found = shared_model(model_path(_settings().triage_model)).suggest(description, channel)
    click.echo(json.dumps(jsonable(found), ensure_ascii=False, indent=1))


@main.command()
def migrate() -> None:
    """Bring the read model's database to the newest schema."""
    from db.engine import migrate as run_migrations

    run_migrations(_settings().database_url)
    click.echo("database is at the newest schema")


def _order_system_get(path: str) -> list:
    """GET a listing from the (simulated) order system, or a clear error."""
    import httpx

    url = _settings().order_system_url
    try:
        response = httpx.get(f"{url}{path}", timeout=10)
    except httpx.HTTPError as err:
        raise click.ClickException(f"the order system at {url} does not answer: {err}") from err
    # An error answer is never printed as if it were the list (a script would trust it).
    if response.status_code != 200:
        raise click.ClickException(f"the order system at {url} answered "
                                   f"{response.status_code} for {path}: {response.text[:200]}")
    try:
        listing = response.json()
    except ValueError as err:
        raise click.ClickException(f"the order system at {url} answered {path} with "
                                   "something that is not JSON") from err
    if not isinstance(listing, list):
        raise click.ClickException(f"the order system at {url} answered {path} with "
                                   "something that is not a list")
    return listing


def _sessions():
    from db.engine import make_engine, make_sessionmaker
    from db.engine import migrate as run_migrations

    settings = _settings()
    run_migrations(settings.database_url)
    return make_sessionmaker(make_engine(settings.database_url))


if __name__ == "__main__":
    main()
