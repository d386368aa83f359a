"""Salesforce: the records of chosen objects (Knowledge articles, Cases, anything SOQL reaches) as
Markdown documents, incrementally by ``SystemModstamp``, deletions from the delete log.

Secret ``{"client_id": "...", "client_secret": "..."}``: an External Client App (or Connected App)
with the OAuth 2.0 client credentials flow enabled and a run-as integration user that has API access
and read access to the objects. The token endpoint must be the org's My Domain.

Settings:
    instance_url   ``https://<MyDomain>.my.salesforce.com`` (API calls and source URLs)
    token_url      default ``{instance_url}/services/oauth2/token``
    api_version    default ``v60.0``
    objects        a list (default ``["Knowledge__kav", "Case"]``); each a name or an object:
        name            the sObject API name
        fields          shown as a list under the title (relationship paths such as ``Owner.Name`` work)
        title_field     the document's title
        body_fields     shown as sections (rich text is turned into plain paragraphs)
        where           an extra SOQL condition (``Knowledge__kav`` must filter on PublishStatus)
        id_field        what names the item (default ``Id``; ``KnowledgeArticleId`` for Knowledge,
                        so a newly published version replaces the previous one)
        deleted_object  whose delete log gives the ids of deleted items (default: the object itself;
                        ``Knowledge__ka`` for ``Knowledge__kav``); null: deletions are not read
        author_field    e.g. ``CreatedBy.Name`` or ``Owner.Name`` (default: none)
        acl_group       a principal every item of the object is allowed to (``group:support``)
    acl_group      the default for objects that do not set one
    Defaults by name (any key may be overridden): ``Knowledge__kav``: title Title, fields ArticleNumber
    and UrlName, body Summary (add your article type's rich-text field, e.g. ``Answer__c``), where
    ``PublishStatus = 'Online'``, id KnowledgeArticleId, delete log of Knowledge__ka. ``Case``: title
    Subject, fields CaseNumber and Status, body Description. Other objects need fields and title_field.
    allowed_networks  CIDRs the HTTP client may reach although they are not public (tests)

Per object and run: the delete log since the last run (``/sobjects/<obj>/deleted/``) becomes
Tombstones, then ``SELECT Id, SystemModstamp, CreatedDate, <fields> FROM <obj> WHERE (<where>) AND
SystemModstamp >= <cursor, to the second> ORDER BY SystemModstamp, Id`` follows ``nextRecordsUrl``,
with a Checkpoint after each page. Deletions come first so that a record deleted and then restored
ends up present. A 401 (expired session) fetches a new token once and repeats the request.

Cursor (JSON): ``{"v": 1, "objects": {"Case": {"modstamp": "2024-05-01T10:00:00.000Z",
"ids": ["500..."], "deleted_until": "2024-05-01T10:05:00Z"}}}``. SOQL datetime literals have whole
seconds only, so the query starts at the cursor's second and skips what the cursor has already
seen: records older than ``modstamp``, and those at ``modstamp`` listed in ``ids``. A page boundary
between records that share a timestamp therefore loses nothing and repeats nothing.

Limitations:
- Salesforce keeps the delete log for 15 days (less if the Recycle Bin is emptied). When the cursor
  is older, the deletions in between cannot be read: the run logs a warning and reads what is
  left; to remove what was deleted meanwhile, reset the instance's cursor (a full re-listing) and
  delete the instance's documents that it does not land again.
- Sharing (org-wide defaults, role hierarchy, sharing rules, manual shares, territories) and
  field-level security are not mirrored: ``acl_group`` is one principal for a whole object. Leave
  sensitive fields out of ``fields`` and ``body_fields``.
- A Knowledge article that is archived (not deleted) is not removed.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from sluice.connectors import (
    Change,
    Checkpoint,
    Context,
    Instance,
    Item,
    SourceError,
    Tombstone,
    load_json_cursor,
    safe_item_id,
)
from sluice.connectors.http import Response
from sluice.connectors.settings import Problems, allowed_networks, check_url, http_client, unknown_settings
from sluice.model import BlockKind
from sluice.pipeline.extract.html import extract_html

log = logging.getLogger(__name__)

SETTINGS = ("instance_url", "token_url", "api_version", "objects", "acl_group", "allowed_networks")
OBJECT_SETTINGS = (
    "name",
    "fields",
    "title_field",
    "body_fields",
    "where",
    "id_field",
    "deleted_object",
    "author_field",
    "acl_group",
)
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}(\.[A-Za-z][A-Za-z0-9_]{0,79}){0,4}$")
VERSION = re.compile(r"^v\d{2,3}\.0$")
PRINCIPAL = re.compile(r"^(user|group):\S+$")
HTML_TAG = re.compile(r"<(p|div|br|span|h[1-6]|ul|ol|li|table|a|b|i|strong|em|img)\b", re.IGNORECASE)
DELETE_LOG = timedelta(days=15)  # how far back the delete log reaches
ALWAYS = ("Id", "SystemModstamp", "CreatedDate")
DEFAULTS: dict[str, dict[str, Any]] = {
    "Knowledge__kav": {
        "fields": ["ArticleNumber", "UrlName"],
        "title_field": "Title",
        "body_fields": ["Summary"],
        "where": "PublishStatus = 'Online'",
        "id_field": "KnowledgeArticleId",
        "deleted_object": "Knowledge__ka",
    },
    "Case": {
        "fields": ["CaseNumber", "Status"],
        "title_field": "Subject",
        "body_fields": ["Description"],
    },
}


@dataclass(frozen=True)
class SalesforceObject:
    name: str
    fields: tuple[str, ...]
    title_field: str
    body_fields: tuple[str, ...] = ()
    where: str | None = None
    id_field: str = "Id"
    deleted_object: str | None = None
    author_field: str | None = None
    acl_group: str | None = None

    def select(self) -> list[str]:
        wanted = [*ALWAYS, self.id_field, self.title_field, *self.fields, *self.body_fields]
        if self.author_field:
            wanted.append(self.author_field)
        return list(dict.fromkeys(wanted))


class SalesforceConnector:
    complete_listing: ClassVar[bool] = False

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        instance_url: str,
        objects: Sequence[SalesforceObject],
        http: Any,
        token_url: str | None = None,
        api_version: str = "v60.0",
        now: Callable[[], float] = time.time,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self.instance_url = instance_url.rstrip("/")
        self.token_url = token_url or f"{self.instance_url}/services/oauth2/token"
        self.api_version = api_version
        self.objects = list(objects)
        self.http = http
        self.now = now
        self._token: str | None = None

    @classmethod
    def from_instance(cls, instance: Instance, context: Context) -> SalesforceConnector:
        settings = instance.settings
        problems = Problems()
        unknown_settings(settings, SETTINGS, problems)
        secret = context.secret
        for key in ("client_id", "client_secret"):
            if not (isinstance(secret.get(key), str) and secret[key]):
                problems.add(f'the secret needs "{key}" (the External Client App\'s consumer {key[7:]})')
        networks = allowed_networks(settings.get("allowed_networks"), problems)
        instance_url = settings.get("instance_url")
        check_url("instance_url", instance_url, networks, problems)
        token_url = settings.get("token_url")
        if token_url is not None:
            check_url("token_url", token_url, networks, problems)
        version = settings.get("api_version", "v60.0")
        if not (isinstance(version, str) and VERSION.match(version)):
            problems.add(f'api_version must look like "v60.0", not {version!r}')
        default_acl = settings.get("acl_group")
        if default_acl is not None and not (isinstance(default_acl, str) and PRINCIPAL.match(_principal(default_acl))):
            problems.add(f"acl_group must be a group name or a user:/group: principal, not {default_acl!r}")
        raw_objects = settings.get("objects", ["Knowledge__kav", "Case"])
        objects: list[SalesforceObject] = []
        if not (isinstance(raw_objects, list) and raw_objects):
            problems.add("objects must be a non-empty list of object names or settings")
            raw_objects = []
        for number, raw in enumerate(raw_objects):
            found = _object(raw, f"objects[{number}]", default_acl, problems)
            if found is not None:
                objects.append(found)
        names = [o.name for o in objects]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.add(f"objects: {name} is listed twice")
        problems.raise_any()
        return cls(
            client_id=str(secret["client_id"]),
            client_secret=str(secret["client_secret"]),
            instance_url=str(instance_url),
            token_url=str(token_url) if token_url else None,
            api_version=str(version),
            objects=objects,
            http=http_client(context, networks),
            now=context.now or time.time,
        )

    # -- the sync --------------------------------------------------------------------------------

    def changes(self, cursor: str | None) -> Iterator[Change]:
        state = load_json_cursor(cursor, "Salesforce", "objects")
        state["objects"] = {k: v for k, v in state["objects"].items() if k in {o.name for o in self.objects}}

        def checkpoint() -> Checkpoint:
            return Checkpoint(json.dumps(state, separators=(",", ":"), sort_keys=True))

        for sobject in self.objects:
            object_state = state["objects"].setdefault(sobject.name, {})
            if self._deletions(sobject, object_state):
                for record_id in self._deleted_ids(sobject, object_state):
                    yield Tombstone(safe_item_id(sobject.name, record_id))
                yield checkpoint()
            for page in self._query(sobject, object_state):
                yield from page
                yield checkpoint()

    def _deletions(self, sobject: SalesforceObject, state: dict[str, Any]) -> bool:
        """Whether the delete log is read this run (the first run only notes where to start)."""
        if sobject.deleted_object is None:
            return False
        if not state.get("deleted_until"):
            state["deleted_until"] = _z(_minute(self._now()))
            return False
        return True

    def _deleted_ids(self, sobject: SalesforceObject, state: dict[str, Any]) -> list[str]:
        now = self._now()
        start = _parse(state["deleted_until"])
        end = _minute(now)
        earliest_readable = _minute(now - DELETE_LOG) + timedelta(minutes=5)
        if start < earliest_readable:
            log.warning(
                "Salesforce %s: deletions between %s and %s are no longer in the delete log; reset this "
                "instance's cursor (a full re-listing) to remove records deleted then",
                sobject.name,
                _z(start),
                _z(earliest_readable),
            )
            start = earliest_readable
        if end - start < timedelta(minutes=1):  # the log has minute precision
            return []
        query = urlencode({"start": _z(start), "end": _z(end)})
        path = f"/services/data/{self.api_version}/sobjects/{sobject.deleted_object}/deleted/?{query}"
        data = self._get(path, f"the delete log of {sobject.deleted_object}")
        earliest = data.get("earliestDateAvailable")
        if earliest and _parse(str(earliest)) > start:
            log.warning(
                "Salesforce %s: the delete log starts at %s, after %s; deletions before it are lost (reset "
                "the cursor for a full re-listing)",
                sobject.name,
                earliest,
                _z(start),
            )
        covered = data.get("latestDateCovered")
        state["deleted_until"] = _z(_parse(str(covered)) if covered else end)
        return [str(r["id"]) for r in data.get("deletedRecords") or [] if r.get("id")]

    def _query(self, sobject: SalesforceObject, state: dict[str, Any]) -> Iterator[list[Item]]:
        """Pages of changed records as Items; ``state`` moves with each page yielded."""
        since = _parse(state["modstamp"]) if state.get("modstamp") else None
        seen_at_since = set(state.get("ids") or [])
        conditions = [f"({sobject.where})"] if sobject.where else []
        if since is not None:
            conditions.append(f"SystemModstamp >= {_z(since.replace(microsecond=0))}")
        soql = f"SELECT {', '.join(sobject.select())} FROM {sobject.name}"
        if conditions:
            soql += " WHERE " + " AND ".join(conditions)
        soql += " ORDER BY SystemModstamp, Id"
        path: str | None = f"/services/data/{self.api_version}/query?{urlencode({'q': soql}, quote_via=quote)}"
        while path:
            data = self._get(path, f"the query of {sobject.name}")
            page: list[Item] = []
            for record in data.get("records") or []:
                stamp = _parse(str(record["SystemModstamp"]))
                record_id = str(record["Id"])
                if since is not None and (stamp < since or (stamp == since and record_id in seen_at_since)):
                    continue
                if since is None or stamp > since:
                    since, seen_at_since = stamp, set()
                seen_at_since.add(record_id)
                page.append(self._item(sobject, record))
            if since is not None:
                state["modstamp"] = _z(since, milliseconds=True)
                state["ids"] = sorted(seen_at_since)
            yield page
            following = data.get("nextRecordsUrl")
            if data.get("done", True) or not following:
                path = None
            elif not str(following).startswith("/services/data/"):
                raise SourceError(f"Salesforce answered an unexpected nextRecordsUrl: {following!r}")
            else:
                path = str(following)

    # -- rendering -------------------------------------------------------------------------------

    def _item(self, sobject: SalesforceObject, record: Mapping[str, Any]) -> Item:
        title = _text(_value(record, sobject.title_field)) or f"{sobject.name} {record['Id']}"
        lines = [f"# {title}", "", f"- **Object:** {sobject.name}"]
        for name in sobject.fields:
            value = _text(_value(record, name))
            if value:
                lines.append(f"- **{name}:** {' '.join(value.split())}")
        for name in sobject.body_fields:
            value = _text(_value(record, name))
            if value:
                lines.extend(["", f"## {name}", "", _body(value)])
        author = _text(_value(record, sobject.author_field)) if sobject.author_field else ""
        item_id = _text(_value(record, sobject.id_field)) or str(record["Id"])
        return Item(
            item_id=safe_item_id(sobject.name, item_id),
            body=("\n".join(lines).rstrip() + "\n").encode(),
            ext="md",
            title=title,
            source_url=f"{self.instance_url}/{record['Id']}",
            created_at=_z(_parse(str(record["CreatedDate"]))) if record.get("CreatedDate") else None,
            updated_at=_z(_parse(str(record["SystemModstamp"]))),
            author=author or None,
            allow=(sobject.acl_group,) if sobject.acl_group else (),
            attributes={"salesforce_object": sobject.name, "salesforce_id": str(record["Id"])},
        )

    # -- HTTP ------------------------------------------------------------------------------------

    def _authenticate(self) -> str:
        form = {"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret}
        response: Response = self.http.request(
            "POST",
            self.token_url,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            body=urlencode(form).encode(),
            follow_redirects=False,
        )
        data = _json(response)
        if response.status != 200 or not isinstance(data, dict) or not data.get("access_token"):
            error = data.get("error", "") if isinstance(data, dict) else ""
            description = data.get("error_description", "") if isinstance(data, dict) else ""
            raise SourceError(
                f"Salesforce refused the client credentials at {self.token_url}: HTTP {response.status} "
                f"{error} {description}".rstrip()
            )
        self._token = str(data["access_token"])
        return self._token

    def _get(self, path: str, what: str) -> dict[str, Any]:
        url = self.instance_url + path
        for attempt in range(2):
            token = self._token or self._authenticate()
            response: Response = self.http.request(
                "GET", url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
            )
            if response.status == 401 and attempt == 0:
                self._token = None  # the session expired (INVALID_SESSION_ID): one new token, one retry
                continue
            break
        data = _json(response)
        if response.status == 200 and isinstance(data, dict):
            return data
        code, message = _error(data)
        if code == "REQUEST_LIMIT_EXCEEDED":
            raise SourceError(f"Salesforce {what}: the org's API request limit is used up; the next run resumes")
        raise SourceError(f"Salesforce {what}: HTTP {response.status} {code}: {message}".rstrip(": "))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


# -- settings -------------------------------------------------------------------------------------


def _object(raw: Any, where: str, default_acl: Any, problems: Problems) -> SalesforceObject | None:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping):
        problems.add(f"{where} must be an object name or an object")
        return None
    before = len(problems)
    unknown_settings(raw, OBJECT_SETTINGS, problems, f"{where}: ")
    name = raw.get("name")
    if not (isinstance(name, str) and NAME.match(name)):
        problems.add(f"{where}: name must be an sObject API name, not {name!r}")
        return None
    where = f"{where} ({name})"
    merged = {**DEFAULTS.get(name, {}), **raw}
    if "title_field" not in merged or "fields" not in merged:
        problems.add(f"{where}: fields and title_field are needed (only {', '.join(DEFAULTS)} have defaults)")
        return None
    fields = merged.get("fields")
    body_fields = merged.get("body_fields", [])
    for key, value in (("fields", fields), ("body_fields", body_fields)):
        if not (isinstance(value, list) and all(isinstance(f, str) and FIELD.match(f) for f in value)):
            problems.add(f"{where}: {key} must be a list of field API names, not {value!r}")
    for key in ("title_field", "id_field", "author_field"):
        value = merged.get(key)
        if value is not None and not (isinstance(value, str) and FIELD.match(value)):
            problems.add(f"{where}: {key} must be a field API name, not {value!r}")
    deleted = merged.get("deleted_object", name)
    if deleted is not None and not (isinstance(deleted, str) and NAME.match(deleted)):
        problems.add(f"{where}: deleted_object must be an sObject API name or null, not {deleted!r}")
    condition = merged.get("where")
    if condition is not None and not (isinstance(condition, str) and condition.strip()):
        problems.add(f"{where}: where must be a SOQL condition, not {condition!r}")
    acl = merged.get("acl_group", default_acl)
    if acl is not None and not (isinstance(acl, str) and PRINCIPAL.match(_principal(acl))):
        problems.add(f"{where}: acl_group must be a group name or a user:/group: principal, not {acl!r}")
    if len(problems) > before:
        return None
    return SalesforceObject(
        name=name,
        fields=tuple(fields or ()),
        title_field=str(merged["title_field"]),
        body_fields=tuple(body_fields),
        where=str(condition) if condition else None,
        id_field=str(merged.get("id_field") or "Id"),
        deleted_object=str(deleted) if deleted else None,
        author_field=str(merged["author_field"]) if merged.get("author_field") else None,
        acl_group=_principal(acl) if acl else None,
    )


def _principal(value: str) -> str:
    return value if value.startswith(("user:", "group:")) else f"group:{value}"


# -- values ---------------------------------------------------------------------------------------


def _value(record: Mapping[str, Any], path: str) -> Any:
    """A field, following relationship paths (``Owner.Name``); None when a link is empty."""
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str:
    if value is None or isinstance(value, Mapping | list):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).strip()


def _body(value: str) -> str:
    """Rich text (HTML) as paragraphs; plain text as it is."""
    if not HTML_TAG.search(value):
        return value
    blocks = extract_html(value.encode()).blocks
    return "\n\n".join(f"### {b.text}" if b.kind is BlockKind.HEADING else b.text for b in blocks)


def _parse(value: str) -> datetime:
    """Salesforce's ``2024-05-01T10:00:00.000+0000`` (or any ISO 8601 time) as an aware datetime."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SourceError(f"Salesforce sent a time that is not ISO 8601: {value!r}") from exc
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _z(value: datetime, *, milliseconds: bool = False) -> str:
    return (
        value.astimezone(UTC).isoformat(timespec="milliseconds" if milliseconds else "seconds").replace("+00:00", "Z")
    )


def _minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _json(response: Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error(data: Any) -> tuple[str, str]:
    """(errorCode, message) from Salesforce's ``[{"errorCode": ..., "message": ...}]``."""
    first = data[0] if isinstance(data, list) and data else data
    if isinstance(first, Mapping):
        return str(first.get("errorCode") or first.get("error") or ""), str(
            first.get("message") or first.get("error_description") or ""
        )
    return "", ""
